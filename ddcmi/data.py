"""Datasets: a registry of the standard ones, local offline formats, and fast class-wise sampling.

Every dataset is held in memory as ``uint8`` images (N x C x H x W) with integer labels; a
:class:`RealSampler` keeps the normalised training images per class on the compute device so that
"n random real images of class c" is one ``index_select``.

Where a dataset is looked for, in this order (the first hit wins):

1. an explicit ``root`` argument (``--data-root`` on the command line),
2. the ``DDCMI_DATA`` environment variable,
3. the per-user cache, ``$XDG_CACHE_HOME/ddcmi/data`` (``~/.cache/ddcmi/data``).

Inside each root, for a dataset called ``name``: ``name/train.npz`` + ``name/test.npz``; an
ImageFolder pair ``name/train/`` + ``name/test/`` (or ``val/``); a ``name/name.tar.gz`` or
``name.tar.gz`` of such a folder (unpacked once into the cache); or torchvision's own files. When
nothing is found and downloads are allowed, the standard datasets download through torchvision into
the first root of the list.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ._registry import Registry
from .errors import ConfigError, DatasetNotFoundError
from .utils import atomic_torch_save, cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DatasetInfo:
    """What the kit knows about a dataset before loading it."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label: str  # the name results are reported under
    description: str
    download: Callable[[Path, bool], tuple[np.ndarray, np.ndarray, list[str]]] | None = None


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _tv_loader(cls_name: str, split_kw: str = "train"):
    """A downloader/reader through torchvision for one of its dataset classes."""

    def load(root: Path, train: bool, download: bool = True):
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        if split_kw == "split":
            ds = cls(str(root), split="train" if train else "test", download=download)
            images = np.asarray(ds.data)  # SVHN: N x 3 x H x W
            labels = np.asarray(ds.labels)
            classes = [str(i) for i in range(10)]
        else:
            ds = cls(str(root), train=train, download=download)
            images = ds.data.numpy() if torch.is_tensor(ds.data) else np.asarray(ds.data)
            labels = np.asarray(ds.targets)
            classes = list(ds.classes)
        return images, labels, classes

    return load


def _tiny_imagenet_loader(root: Path, train: bool, download: bool = True):
    base = root / "tiny-imagenet-200"
    if not base.is_dir():
        if not download:
            raise FileNotFoundError(base)
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", str(root),
                                     md5="90528d7ca1a48142e341f4ef8d21d0de")
    return _read_tiny_imagenet(base, train)


_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
for _info in [
    DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,), "MNIST", "handwritten digits, 28x28 grey",
                _tv_loader("MNIST")),
    DatasetInfo("fashion_mnist", 1, 28, 10, (0.2860,), (0.3530,), "Fashion-MNIST",
                "Zalando clothing, 28x28 grey", _tv_loader("FashionMNIST")),
    DatasetInfo("cifar10", 3, 32, 10, _CIFAR10_MEAN, _CIFAR10_STD, "CIFAR-10", "genuine CIFAR-10, 32x32 RGB",
                _tv_loader("CIFAR10")),
    # The lossy JPEG q75 copy shipped offline: its own name and its own measured statistics
    # (population mean/std of its decoded train split), so a result on it is never called CIFAR-10.
    DatasetInfo("cifar10_jpeg", 3, 32, 10, (0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606),
                "CIFAR-10 (JPEG q75)", "lossy JPEG q75 re-encoding of CIFAR-10 (local only, no download)"),
    DatasetInfo("cifar100", 3, 32, 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), "CIFAR-100",
                "CIFAR-100, 32x32 RGB", _tv_loader("CIFAR100")),
    DatasetInfo("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), "SVHN",
                "street-view house numbers, 32x32 RGB", _tv_loader("SVHN", "split")),
    DatasetInfo("tinyimagenet", 3, 64, 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "Tiny-ImageNet",
                "Tiny-ImageNet-200, 64x64 RGB (test = the labelled val split)", _tiny_imagenet_loader),
]:
    DATASETS.register(_info.name, _info)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


# ----------------------------------------------------------------------------- in-memory data
@dataclass
class ImageSet:
    """One split in memory: uint8 images N x C x H x W and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ConfigError(f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ConfigError(f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.numel())


@dataclass
class Dataset:
    """A loaded dataset: both splits, class names, normalisation, and where it came from."""

    name: str
    label: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    def normalize(self, images_uint8: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """uint8 images -> float, scaled to [0,1] and normalised with this dataset's mean/std."""
        return normalize(images_uint8.to(device), self.mean, self.std)

    def class_counts(self, split: str = "train") -> list[int]:
        labels = getattr(self, split).labels
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    def real_sampler(self, device: torch.device | str = "cpu", transform=None) -> "RealSampler":
        """Normalised training images by class on ``device``; ``transform`` (e.g. ``ZCA.whiten``) maps them
        once more."""
        return RealSampler(self, device, transform)

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "classes": list(self.classes), "mean": list(self.mean),
                "std": list(self.std), "train_size": len(self.train), "test_size": len(self.test),
                "image_shape": [self.channels, *self.image_size], "source": self.source}


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised images back to [0,1] pixel space (not clamped)."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return images * s + m


class RealSampler:
    """Normalised training images grouped by class on ``device``: fast random draws per class."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu", transform=None):
        self.dataset = dataset
        self.device = torch.device(device)
        self.transform = transform  # applied after normalisation (ZCA whitening for MTT), or None
        labels = dataset.train.labels
        self.by_class: list[torch.Tensor] = []
        for c in range(dataset.num_classes):
            idx = torch.nonzero(labels == c).flatten()
            x = dataset.normalize(dataset.train.images[idx], self.device)
            self.by_class.append(x if transform is None else transform(x))

    def count(self, c: int) -> int:
        return int(self.by_class[c].shape[0])

    def check_ipc(self, ipc: int) -> None:
        smallest = min(self.count(c) for c in range(len(self.by_class)))
        if ipc > smallest:
            raise ConfigError(f"IPC {ipc} is larger than the smallest class of {self.dataset.name} "
                              f"({smallest} training images); choose ipc <= {smallest}")

    def sample(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` distinct random training images of class ``c`` (all of them when the class is smaller)."""
        pool = self.by_class[c]
        n = min(n, pool.shape[0])
        idx = torch.randperm(pool.shape[0], generator=generator)[:n]
        return pool.index_select(0, idx.to(self.device))

    def balanced_batches(self, batch: int, steps: int, generator: torch.Generator):
        """``steps`` batches of about ``batch`` random images, the same number of every class (at least
        one; classes in order), and their labels: the real batches networks are trained on between image
        updates (IDC, IDM's queue)."""
        per_class = max(1, batch // len(self.by_class))
        for _ in range(steps):
            x = torch.cat([self.sample(c, per_class, generator) for c in range(len(self.by_class))])
            yield x, torch.arange(len(self.by_class), device=x.device).repeat_interleave(per_class)

    def initial_images(self, ipc: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Real-image initialisation: ``ipc`` distinct random images per class, classes in order."""
        self.check_ipc(ipc)
        images = torch.cat([self.sample(c, ipc, generator) for c in range(len(self.by_class))])
        labels = torch.arange(len(self.by_class), device=self.device).repeat_interleave(ipc)
        return images, labels


# ----------------------------------------------------------------------------- finding data
def data_roots(root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places a dataset is looked for, in order, each with where it came from."""
    roots: list[tuple[str, Path]] = []
    from .store import resolve_user_path  # relative paths resolved once, shown absolute
    if root is not None:
        given = resolve_user_path(root)
        if not given.is_dir():
            from .errors import DatasetNotFoundError
            raise DatasetNotFoundError(f"data root {given} (--data-root / root=) does not exist; check the path "
                                       f"(a missing root is an error, not a silent fall-back to $DDCMI_DATA)")
        roots.append(("argument root", given))
    env = os.environ.get("DDCMI_DATA")
    if env:
        roots.append(("DDCMI_DATA", resolve_user_path(env)))
    roots.append(("user cache", cache_dir() / "data"))
    return roots


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool | None = None) -> Dataset:
    """Load a registered dataset by name, or a local dataset by path (npz pair, ImageFolder, .tar.gz).

    ``download`` defaults to True unless the environment sets ``DDCMI_OFFLINE=1``.
    """
    if download is None:
        download = os.environ.get("DDCMI_OFFLINE", "0") not in ("1", "true", "yes")
    if name.lower() not in DATASETS:
        path = Path(name).expanduser()
        if path.exists():
            return _load_local_path(path)
        DATASETS.get(name)  # raises the "unknown dataset" error that lists the known names
    info = DATASETS.get(name)
    searched: list[str] = []
    for origin, r in data_roots(root):
        found = _find_local(info, r, searched, origin)
        if found is not None:
            return found
    errors = []
    if info.download is not None and download:
        target = data_roots(root)[0][1]
        created = not target.exists()
        try:
            target.mkdir(parents=True, exist_ok=True)
            return _from_arrays(info, [info.download(target, split, True) for split in (True, False)],
                                source=f"torchvision download into {target}")
        except Exception as exc:  # network down, disk full, ...
            errors.append(f"download through torchvision into {target} failed: {exc}")
            if created and target.is_dir() and not any(target.iterdir()):
                target.rmdir()  # leave no empty folder behind that the failed download made
    elif info.download is None:
        errors.append(f"{info.name} cannot be downloaded: it exists only as a local copy")
    else:
        errors.append("downloads are off (download=False or DDCMI_OFFLINE=1)")
    places = "\n  ".join(searched)
    alike = _present_look_alikes(info.name, [r for _, r in data_roots(root)])
    if alike:
        errors.append("present in the searched roots: " + "; ".join(
            f"{n} at {where} (--dataset {n}{', a lossy JPEG copy: results are labelled ' + n if 'jpeg' in n else ''})"
            for n, where in alike))
    raise DatasetNotFoundError(
        f"dataset {info.name!r} not found. Searched:\n  {places}\n" + "\n".join(errors) + "\n"
        f"Fix: pass a root that holds it (--data-root DIR or load_dataset(..., root=DIR)), or set "
        f"DDCMI_DATA=DIR, where DIR contains {info.name}/train.npz + {info.name}/test.npz, an ImageFolder "
        f"{info.name}/train + {info.name}/test, or {info.name}.tar.gz of such a folder"
        + ("" if info.download is None else "; or allow the torchvision download on a machine with internet") + ".")


def _present_look_alikes(name: str, roots: list[Path]) -> list[tuple[str, Path]]:
    """Registered datasets whose name contains or is contained in ``name`` (cifar10 / cifar10_jpeg) and
    that one of ``roots`` holds (a folder or archive of that name): what the user probably meant."""
    out = []
    for other in DATASETS.names():
        if other == name or not (other.startswith(name) or name.startswith(other)):
            continue
        for r in roots:
            hit = next((p for p in (r / other, r / f"{other}.tar.gz") if p.exists()), None)
            if hit is not None:
                out.append((other, hit))
                break
    return out


def _find_local(info: DatasetInfo, root: Path, searched: list[str], origin: str) -> Dataset | None:
    d = root / info.name
    npz = (d / "train.npz", d / "test.npz")
    searched.append(f"{npz[0]} + test.npz ({origin})")
    if all(p.is_file() for p in npz):
        return _from_arrays(info, [_read_npz(p) for p in npz], source=str(d))
    searched.append(f"{d}/train/ + test/ ImageFolder ({origin})")
    folder = _imagefolder_root(d)
    if folder is not None:
        return _from_arrays(info, _read_imagefolder_pair(folder, info.channels), source=str(folder))
    for tgz in (d / f"{info.name}.tar.gz", root / f"{info.name}.tar.gz"):
        searched.append(f"{tgz} ({origin})")
        if tgz.is_file():
            return _from_arrays(info, _read_imagefolder_pair(_unpack(tgz), info.channels), source=str(tgz))
    if info.download is not None:
        for cand in (root, d):
            searched.append(f"torchvision files for {info.name} in {cand} ({origin})")
            try:
                return _from_arrays(info, [info.download(cand, split, False) for split in (True, False)],
                                    source=f"torchvision files in {cand}")
            except (RuntimeError, FileNotFoundError, OSError):
                continue
    return None


def _load_local_path(path: Path) -> Dataset:
    """A dataset that is not registered: a folder with train/test npz or ImageFolders, or a .tar.gz."""
    if path.is_file() and path.name.endswith(".tar.gz"):
        folder = _imagefolder_root(_unpack(path))
        name = path.name[: -len(".tar.gz")]
    else:
        folder = _imagefolder_root(path) if path.is_dir() else None
        name = path.name
    if path.is_dir() and (path / "train.npz").is_file() and (path / "test.npz").is_file():
        arrays = [_read_npz(path / "train.npz"), _read_npz(path / "test.npz")]
    elif folder is not None:
        arrays = _read_imagefolder_pair(folder, None)
    else:
        raise DatasetNotFoundError(
            f"{path} is not a dataset: expected a folder with train.npz and test.npz, an ImageFolder "
            f"folder with train/ and test/ (or val/), or a .tar.gz of one")
    images = torch.from_numpy(_to_nchw(arrays[0][0]))
    x = images.float().div_(255)
    mean = tuple(round(v, 4) for v in x.mean(dim=(0, 2, 3)).tolist())
    std = tuple(round(v, 4) for v in x.std(dim=(0, 2, 3), unbiased=False).tolist())
    # the name is the path as given, so a config that records it can load the same data again
    info = DatasetInfo(str(path), images.shape[1], images.shape[2], len(arrays[0][2]), mean, std, name,
                       f"local dataset at {path} (statistics measured on its train split)")
    return _from_arrays(info, arrays, source=str(path), check_shape=False)


def _to_nchw(images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.ndim == 4:
        return images
    raise ConfigError(f"images must be N x H x W or N x H x W x C, got shape {images.shape}")


def _from_arrays(info: DatasetInfo, arrays, source: str, check_shape: bool = True) -> Dataset:
    (xtr, ytr, classes), (xte, yte, classes_te) = arrays
    train = ImageSet(torch.from_numpy(_to_nchw(np.asarray(xtr, dtype=np.uint8))), torch.as_tensor(np.asarray(ytr), dtype=torch.int64))
    test = ImageSet(torch.from_numpy(_to_nchw(np.asarray(xte, dtype=np.uint8))), torch.as_tensor(np.asarray(yte), dtype=torch.int64))
    if check_shape:
        want = (info.channels, info.size, info.size)
        for split, s in (("train", train), ("test", test)):
            if tuple(s.images.shape[1:]) != want:
                raise ConfigError(f"{info.name} {split} images at {source} have shape {tuple(s.images.shape[1:])}, "
                                  f"expected {want}")
    if len(classes) != info.num_classes or int(train.labels.max()) >= info.num_classes:
        raise ConfigError(f"{info.name} at {source}: {len(classes)} classes found, expected {info.num_classes}")
    return Dataset(info.name, info.label, train, test, [str(c) for c in classes], info.mean, info.std, source)


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as d:
        missing = {"images", "labels"} - set(d.files)
        if missing:
            raise ConfigError(f"{path} lacks the arrays {sorted(missing)}; an npz dataset holds images, labels, classes")
        images, labels = d["images"], d["labels"]
        classes = list(d["classes"]) if "classes" in d.files else [str(i) for i in range(int(labels.max()) + 1)]
    if images.dtype != np.uint8:
        raise ConfigError(f"{path}: images must be uint8 (0..255), got {images.dtype}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or int(labels.min()) < 0):
        raise ConfigError(f"{path}: labels must be integers 0..C-1, got dtype {labels.dtype} with minimum "
                          f"{labels.min()}; relabel the classes from 0")
    return images, labels, classes


def _imagefolder_root(d: Path) -> Path | None:
    """The folder holding train/ and test/ (or val/): ``d`` itself or one level below."""
    for cand in [d, *sorted(p for p in d.iterdir() if p.is_dir())] if d.is_dir() else []:
        if (cand / "train").is_dir() and ((cand / "test").is_dir() or (cand / "val").is_dir()):
            return cand
    return None


def _unpack(tgz: Path) -> Path:
    """Unpack a .tar.gz once into the cache (keyed by its path, size and mtime) and return the folder."""
    st = tgz.stat()
    key = hashlib.sha1(f"{tgz.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    dest = cache_dir() / "unpacked" / f"{tgz.name[:-7]}-{key}"
    done = dest / ".complete"
    if not done.exists():
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tf:
            tf.extractall(tmp, filter="data")
        if dest.exists():
            import shutil
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        done.touch()
    root = _imagefolder_root(dest)
    if root is None:
        raise DatasetNotFoundError(f"{tgz} does not contain an ImageFolder pair train/ + test/")
    return root


def _read_imagefolder_pair(folder: Path, channels: int | None):
    test = folder / "test" if (folder / "test").is_dir() else folder / "val"
    return [_read_imagefolder(folder / "train", channels), _read_imagefolder(test, channels)]


def _content_key(folder: Path, files: list[Path], channels: int | None) -> str:
    """The decode cache's key: every image's path below ``folder`` (its class) and its bytes, so an
    edited image, or one moved between classes, is never served stale."""
    h = hashlib.blake2b(f"{channels}".encode(), digest_size=8)
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def _read_imagefolder(folder: Path, channels: int | None):
    """Decode an ImageFolder into arrays, cached as a .pt next to the unpack cache."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetNotFoundError(f"no images under {folder}")
    key = _content_key(folder, files, channels)
    cached = cache_dir() / "decoded" / f"{folder.parent.name}-{folder.name}-{key}.pt"
    if cached.exists():
        d = torch.load(cached, weights_only=True)
        return d["images"].numpy(), d["labels"].numpy(), d["classes"]
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    images, labels = [], []
    for p in files:
        cls = p.relative_to(folder).parts[0]
        try:
            with Image.open(p) as im:
                mode = {1: "L", 3: "RGB"}.get(channels or (1 if im.mode in ("L", "1") else 3))
                arr = np.asarray(im.convert(mode))
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for a truncated or foreign file
            raise DatasetNotFoundError(f"image {p} cannot be decoded ({type(exc).__name__}: {exc}); remove or "
                                       f"replace it (every file under {folder} with an image suffix is read)") from exc
        images.append(arr)
        labels.append(index[cls])
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise ConfigError(f"images under {folder} have different sizes {sorted(shapes)[:3]}...; resize them first")
    out = np.stack(images), np.asarray(labels, dtype=np.int64), classes
    atomic_torch_save({"images": torch.from_numpy(out[0]), "labels": torch.from_numpy(out[1]), "classes": classes},
                      cached)
    return out


def _read_tiny_imagenet(base: Path, train: bool):
    wnids = [w.strip() for w in (base / "wnids.txt").read_text().split()]
    index = {w: i for i, w in enumerate(wnids)}
    from PIL import Image

    if train:
        pairs = [(p, index[p.parts[-3]]) for p in sorted((base / "train").glob("*/images/*.JPEG"))]
    else:
        ann = [line.split("\t")[:2] for line in (base / "val" / "val_annotations.txt").read_text().splitlines() if line]
        pairs = [(base / "val" / "images" / f, index[w]) for f, w in ann]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in pairs])
    return images, np.asarray([y for _, y in pairs]), wnids


def random_subset(dataset: Dataset, ipc: int, seed: int = 0, device: torch.device | str = "cpu"):
    """``ipc`` random real training images per class, normalised: (images, labels)."""
    g = torch.Generator().manual_seed(seed)
    return dataset.real_sampler(device).initial_images(ipc, g)
