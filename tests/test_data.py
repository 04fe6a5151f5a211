import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import ddcmi
from ddcmi.data import DATASETS, load_dataset
from conftest import SHARED, need_shared


def write_npz_pair(folder, n=40, shape=(28, 28), classes=10, value=None, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8) if value is None else \
            np.full((n, *shape), value, dtype=np.uint8)
        labels = np.arange(n) % classes
        np.savez_compressed(folder / f"{split}.npz", images=images, labels=labels,
                            classes=np.array([f"c{i}" for i in range(classes)]))


def write_imagefolder(root, classes=("ant", "bee", "cat"), per_class=4, size=8):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_registry_holds_the_standard_datasets_with_their_normalisation():
    assert set(ddcmi.list_datasets()) >= {"mnist", "fashion_mnist", "cifar10", "cifar10_jpeg", "cifar100", "svhn",
                                          "tinyimagenet"}
    c10 = DATASETS.get("cifar10")
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2023, 0.1994, 0.2010)
    assert DATASETS.get("cifar100").std == (0.2673, 0.2564, 0.2762)
    assert DATASETS.get("svhn").mean == (0.4377, 0.4438, 0.4728)
    assert DATASETS.get("tinyimagenet").size == 64 and DATASETS.get("tinyimagenet").num_classes == 200
    jpeg = DATASETS.get("cifar10_jpeg")
    assert jpeg.label != c10.label and "JPEG" in jpeg.label and jpeg.download is None


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ddcmi.UnknownNameError, match="unknown dataset 'cifar11'.*cifar10"):
        load_dataset("cifar11")


def test_missing_data_names_every_place_searched_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DDCMI_DATA", str(tmp_path / "env_root"))
    monkeypatch.setenv("DDCMI_CACHE", str(tmp_path / "cache"))
    (tmp_path / "arg_root").mkdir()
    with pytest.raises(ddcmi.DatasetNotFoundError) as err:
        load_dataset("mnist", root=tmp_path / "arg_root", download=False)
    msg = str(err.value)
    for place in ("arg_root", "env_root", "cache"):
        assert place in msg
    assert "DDCMI_DATA" in msg and "--data-root" in msg and "downloads are off" in msg


def test_missing_data_suggests_a_registered_look_alike_that_is_present(tmp_path, monkeypatch):
    monkeypatch.setenv("DDCMI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DDCMI_DATA", raising=False)
    (tmp_path / "root" / "cifar10_jpeg").mkdir(parents=True)
    with pytest.raises(ddcmi.DatasetNotFoundError, match=r"present in the searched roots: cifar10_jpeg at .*root"):
        load_dataset("cifar10", root=tmp_path / "root", download=False)
    with pytest.raises(ddcmi.DatasetNotFoundError) as err:  # nothing alike there: no suggestion
        load_dataset("svhn", root=tmp_path / "root", download=False)
    assert "present in" not in str(err.value)


def test_a_failed_download_leaves_no_folder_behind(tmp_path, monkeypatch):
    target = tmp_path / "nowhere" / "data"
    monkeypatch.setenv("DDCMI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DDCMI_DATA", str(target))
    info = DATASETS.get("mnist")

    def offline(root, train, download):
        if download:
            raise RuntimeError("network unreachable")
        raise RuntimeError("no files")

    import dataclasses
    monkeypatch.setitem(DATASETS._items, "mnist", dataclasses.replace(info, download=offline))
    with pytest.raises(ddcmi.DatasetNotFoundError, match="network unreachable"):
        load_dataset("mnist", download=True)
    assert not target.exists()


def test_local_only_dataset_says_it_cannot_be_downloaded(tmp_path, monkeypatch):
    monkeypatch.delenv("DDCMI_DATA", raising=False)
    monkeypatch.setenv("DDCMI_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ddcmi.DatasetNotFoundError, match="cannot be downloaded"):
        load_dataset("cifar10_jpeg", root=tmp_path, download=True)


def test_resolution_order_explicit_root_then_env(tmp_path, monkeypatch):
    write_npz_pair(tmp_path / "a" / "mnist", value=10)
    write_npz_pair(tmp_path / "b" / "mnist", value=200)
    monkeypatch.setenv("DDCMI_DATA", str(tmp_path / "b"))
    assert int(load_dataset("mnist", root=tmp_path / "a").train.images.max()) == 10
    assert int(load_dataset("mnist").train.images.max()) == 200


def test_npz_pair_loads_as_uint8_nchw(tmp_path):
    write_npz_pair(tmp_path / "mnist", n=30)
    d = load_dataset("mnist", root=tmp_path)
    assert d.train.images.shape == (30, 1, 28, 28) and d.train.images.dtype == torch.uint8
    assert d.classes[:2] == ["c0", "c1"] and d.mean == (0.1307,)
    x = d.normalize(d.train.images[:2])
    assert torch.allclose(x, (d.train.images[:2].float() / 255 - 0.1307) / 0.3081)


def test_wrong_image_shape_for_a_registered_name_is_an_error(tmp_path):
    write_npz_pair(tmp_path / "mnist", shape=(20, 20))
    with pytest.raises(ddcmi.ConfigError, match="expected \\(1, 28, 28\\)"):
        load_dataset("mnist", root=tmp_path)


def test_local_imagefolder_and_targz_by_path(tmp_path):
    write_imagefolder(tmp_path / "bugs")
    d = load_dataset(str(tmp_path / "bugs"))
    assert d.classes == ["ant", "bee", "cat"] and d.train.images.shape == (12, 3, 8, 8)
    assert len(d.mean) == 3 and all(0 < s < 1 for s in d.std)  # measured on the train split
    with tarfile.open(tmp_path / "bugs2.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "bugs", arcname="bugs2")
    d2 = load_dataset(str(tmp_path / "bugs2.tar.gz"))
    assert torch.equal(d2.train.images, d.train.images) and d2.label == "bugs2"
    assert d2.name == str(tmp_path / "bugs2.tar.gz")  # the path as given: a config can load it again


def test_registered_name_from_a_targz_in_the_root(tmp_path):
    write_imagefolder(tmp_path / "src" / "inner", classes=[f"k{i}" for i in range(10)], per_class=2, size=32)
    with tarfile.open(tmp_path / "cifar10_jpeg.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "src" / "inner", arcname="cifar10_jpeg")
    d = load_dataset("cifar10_jpeg", root=tmp_path, download=False)
    assert d.train.images.shape == (20, 3, 32, 32) and d.label == "CIFAR-10 (JPEG q75)"


def test_real_sampler_draws_distinct_images_of_one_class(mnist):
    s = mnist.real_sampler()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = s.sample(7, 50, g1), s.sample(7, 50, g2)
    assert torch.equal(a, b) and a.shape == (50, 1, 28, 28)
    assert len({tuple(x.flatten()[:400].tolist()) for x in a}) == 50  # distinct draws
    seven = mnist.normalize(mnist.train.images[mnist.train.labels == 7])
    assert all((seven - x).abs().flatten(1).sum(1).min() == 0 for x in a[:5])
    with pytest.raises(ddcmi.ConfigError, match="IPC 6000 is larger than the smallest class"):
        s.check_ipc(6000)


def test_shared_copies_match_their_readme():
    need_shared("mnist")
    d = load_dataset("mnist", root=SHARED)
    assert len(d.train) == 60000 and len(d.test) == 10000 and d.class_counts()[0] == 5923
    f = load_dataset("fashion_mnist", root=SHARED)
    assert f.class_counts() == [6000] * 10 and f.classes[0] == "T-shirt/top"


def test_cifar10_jpeg_statistics_are_its_own(tmp_path):
    need_shared("cifar10_jpeg")
    d = load_dataset("cifar10_jpeg", root=SHARED)
    assert len(d.train) == 50000 and len(d.test) == 10000 and d.classes[0] == "airplane"
    x = d.train.images[::7].float() / 255
    measured = x.mean(dim=(0, 2, 3))
    assert torch.allclose(measured, torch.tensor(d.mean), atol=2e-3)
    assert d.label == "CIFAR-10 (JPEG q75)" and d.name == "cifar10_jpeg"


def test_tiny_imagenet_layout_is_read_with_val_annotations(tmp_path):
    base = tmp_path / "tinyimagenet" / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(0)
    ann = []
    for w in wnids:
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                base / "train" / w / "images" / f"{w}_{i}.JPEG")
        name = f"val_{w}.JPEG"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(base / "val" / "images" / name)
        ann.append(f"{name}\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    from ddcmi.data import _tiny_imagenet_loader
    x, y, classes = _tiny_imagenet_loader(tmp_path / "tinyimagenet", train=True, download=False)
    assert x.shape == (6, 64, 64, 3) and list(y) == [0, 0, 0, 1, 1, 1] and classes == wnids
    xv, yv, _ = _tiny_imagenet_loader(tmp_path / "tinyimagenet", train=False, download=False)
    assert xv.shape == (2, 64, 64, 3) and list(yv) == [0, 1]


def test_imagefolder_cache_follows_content_not_folder_time(tmp_path, monkeypatch):
    import os
    from PIL import Image
    monkeypatch.setenv("DDCMI_CACHE", str(tmp_path / "cache"))
    write_imagefolder(tmp_path / "bugs")
    first = load_dataset(str(tmp_path / "bugs"))
    stamp = (tmp_path / "bugs" / "train").stat().st_mtime_ns
    img = sorted((tmp_path / "bugs" / "train" / "ant").iterdir())[0]
    Image.new("RGB", (8, 8), (255, 255, 255)).save(img)  # an edited image, the folder's time put back
    os.utime(tmp_path / "bugs" / "train", ns=(stamp, stamp))
    edited = load_dataset(str(tmp_path / "bugs"))
    assert not torch.equal(first.train.images, edited.train.images)
    moved = tmp_path / "bugs" / "train" / "bee" / "moved.png"
    img.rename(moved)  # the same image moved to another class
    os.utime(tmp_path / "bugs" / "train", ns=(stamp, stamp))
    assert load_dataset(str(tmp_path / "bugs")).train.labels.tolist() != edited.train.labels.tolist()


def test_a_corrupt_image_in_an_imagefolder_is_named_not_a_traceback(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            d = tmp_path / "folder" / split / c
            d.mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(d / "0.png")
    (tmp_path / "folder" / "train" / "b" / "1.png").write_bytes(b"not a png at all")
    with pytest.raises(ddcmi.DatasetNotFoundError, match=r"image .*1\.png cannot be decoded.*remove or replace it"):
        load_dataset(str(tmp_path / "folder"))
