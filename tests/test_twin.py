"""A +CMI run at IPC 1 with synthetic centroids makes its base method's set bit for bit (the CMI of one
image per class is identically zero), and the run store takes it from the base run instead of distilling
it again (ddcmi.distill.cmi_free_twin, ddcmi.experiments.runs.adopt_twin)."""
import json

import pytest
import torch

from ddcmi import Distiller
from ddcmi.config import DistillConfig
from ddcmi.distill import cmi_free_twin, snapshots
from ddcmi.experiments import run_dir_for, run_or_resume
from ddcmi.experiments.runs import adopt_twin
from ddcmi.profiles import FAST_SWITCHES, make_config
from ddcmi.proxy import ProxyPool


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
@pytest.mark.parametrize("method", ["dm", "dc", "dsa", "mtt"])
def test_the_twin_is_the_config_the_profile_builds_for_the_base_method(method, profile, fast):
    """So the base run a table or sweep has already made is the one found (same key, same run folder)."""
    over = FAST_SWITCHES if fast else None
    twin = cmi_free_twin(make_config(profile, "cifar10", f"{method}+cmi", 1, overrides=over))
    base = make_config(profile, "cifar10", method, 1, overrides=over)
    assert twin == base and twin.key() == base.key() and run_dir_for(twin) == run_dir_for(base)


@pytest.mark.parametrize("method, ipc, overrides", [
    ("dm+cmi", 10, None),  # several images per class: CMI > 0
    ("dm", 1, None),  # no CMI to begin with
    ("idc+cmi", 1, None),  # the CMI sees 4 decoded images per class
    ("idm+cmi", 1, None),
    ("dm+cmi", 1, {"cmi.centroids": "real"}),  # real-data centroids: an image is not its own centroid
])
def test_no_twin_where_the_cmi_is_not_identically_zero(method, ipc, overrides):
    assert cmi_free_twin(make_config("cpu", "cifar10", method, ipc, overrides=overrides)) is None


@pytest.mark.parametrize("method", ["dm", "dsa", "mtt"])
def test_the_cmi_run_at_ipc1_is_its_twins_bit_for_bit_and_is_taken_from_it(toy, method, tmp_path):
    over = {"iterations": 3, "seed": 5}
    cmi = make_config("smoke", toy.name, f"{method}+cmi", 1, overrides=over)
    base = make_config("smoke", toy.name, method, 1, overrides=over)
    pool = ProxyPool.build(cmi.pool, toy, "cpu", progress=False)
    # the +CMI arithmetic itself, in a folder of its own (the proxies drawn, the term skipped as zero)
    computed = Distiller(cmi, toy, out_dir=tmp_path / "computed", pool=pool, progress=False).run()
    assert not any("cmi" in step for step in computed.history["steps"])
    plain = run_or_resume(base, toy, "cpu", pool, progress=False)
    adopted = run_or_resume(cmi, toy, "cpu", pool, progress=False)
    assert torch.equal(computed.synset.images, plain.synset.images)  # fails if the CMI path moves a pixel
    assert torch.equal(adopted.synset.images, computed.synset.images)
    assert torch.equal(adopted.synset.labels, computed.synset.labels)
    assert adopted.synset.learned_lr == computed.synset.learned_lr  # MTT's learned step size
    assert [s["match"] for s in adopted.history["steps"]] == [s["match"] for s in computed.history["steps"]]
    assert adopted.synset.method == f"{method}+cmi" and adopted.out_dir == run_dir_for(cmi)
    saved = json.loads((run_dir_for(cmi) / "config.json").read_text())
    assert DistillConfig.from_dict(saved["config"]).key() == cmi.key()
    assert saved["provenance"]["same_set_as"]["run"] == run_dir_for(base).name
    # the snapshots that curves along the run read, the same as the computed run's
    snaps, want = snapshots(run_dir_for(cmi)), snapshots(tmp_path / "computed")
    assert snaps and sorted(snaps) == sorted(want)
    assert all(torch.equal(torch.load(snaps[i]), torch.load(want[i])) for i in snaps)
    assert adopt_twin(cmi, base) is False  # finished: written once, then found like any finished run
    again = run_or_resume(cmi, toy, "cpu", pool, progress=False)
    assert torch.equal(again.synset.images, adopted.synset.images)


def test_without_a_finished_base_run_the_cmi_run_is_distilled(toy):
    cmi = make_config("smoke", toy.name, "dm+cmi", 1, overrides={"iterations": 2, "seed": 6})
    pool = ProxyPool.build(cmi.pool, toy, "cpu", progress=False)
    res = run_or_resume(cmi, toy, "cpu", pool, progress=False)
    assert "same_set_as" not in res.synset.provenance
    assert not run_dir_for(cmi_free_twin(cmi)).exists()  # nothing written for the base method
