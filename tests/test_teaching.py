import torch

from ddcmi import empirical_cmi, teaching


def test_descent_on_cmi_lowers_it_and_keeps_classes_apart():
    logits, labels = teaching.toy_problem(3, 12, spread=1.5, seed=1)
    path = teaching.minimise_cmi(logits, labels, lam=1.0, steps=40, lr=2.0)
    start = empirical_cmi(torch.softmax(path[0], 1), labels).item()
    end = empirical_cmi(torch.softmax(path[-1], 1), labels).item()
    assert end < 0.5 * start
    _, q = teaching.kl_to_centroid(torch.softmax(path[-1], 1), labels)
    assert (q.argmax(1) == torch.arange(3)).all()  # each class still sits near its own corner


def test_kl_to_centroid_agrees_with_the_estimator():
    logits, labels = teaching.toy_problem(3, 5, seed=2)
    p = torch.softmax(logits, 1)
    kl, _ = teaching.kl_to_centroid(p, labels)
    assert torch.isclose(kl.mean(), empirical_cmi(p, labels), atol=1e-6)
    assert torch.allclose(teaching.to_xy(torch.eye(3)), teaching.CORNERS)
