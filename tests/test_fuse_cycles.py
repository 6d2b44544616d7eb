"""fuse's legality check (no cycle between kernels) searches only downstream of the group an
op joins; it must answer exactly what contracting every group and testing the whole kernel
graph for a cycle answers (what it did before: quadratic, minutes of fusion for the training
step of a DenseNet-121 or a MobileNetV2). Checked at every call fusion makes on the training
graphs of nets with residual adds, 1x1 stride-2 downsampling, BatchNorm in train mode and
concatenations, where some merges are refused for making a cycle."""

from __future__ import annotations

import importlib

import networkx as nx
import numpy as np
import pytest

import compiler
from models import DenseNet, ResNet
from models.resnet import BasicBlock
from tinygrad_edu import manual_seed, optim

fuse_module = importlib.import_module("compiler.passes.fuse")


def acyclic_by_contraction(g, group_of, moving, target) -> bool:
    """The reference: contract every group to a vertex (moving nodes into target), test."""

    def gid(n):
        return target if n in moving else group_of.get(n)

    contracted = nx.DiGraph()
    for src, dst in g.nx.edges():
        a, b = gid(src), gid(dst)
        if a is not None and b is not None and a != b:
            contracted.add_edge(a, b)
    return nx.is_directed_acyclic_graph(contracted)


NETS = {
    "resnet-1111": lambda: ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10),
    "densenet-mini": lambda: DenseNet(8, (2, 2), 16, num_classes=10),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_downstream_cycle_check_agrees_with_contracting_every_group(name, monkeypatch):
    fast = fuse_module._acyclic_after_merge
    answers: list[bool] = []

    def checked(g, group_of, groups, moving, target):
        got = fast(g, group_of, groups, moving, target)
        assert got == acyclic_by_contraction(g, group_of, moving, target), (moving, target)
        answers.append(got)
        return got

    monkeypatch.setattr(fuse_module, "_acyclic_after_merge", checked)
    manual_seed(0)
    model = NETS[name]()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 2])
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    compiler.compile_train_step(model, lambda o, t: o.cross_entropy(t), opt, x, y, "numpy")
    assert len(answers) > 20
    assert answers.count(False) > 0  # merges refused for a cycle were exercised
    assert answers.count(True) > 0
