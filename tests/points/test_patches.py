"""Point patching: FPS centres + kNN groups, re-centred; backends agree; batch formats."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from geomask.points.patches import as_point_batch, group_points


def test_groups_are_nearest_points_recentred():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(3, 300, 3, generator=g)
    p = group_points(pos, 20, 16, generator=torch.Generator().manual_seed(1))
    assert p.centers.shape == (3, 20, 3) and p.neighborhood.shape == (3, 20, 16, 3)
    # every group holds the 16 nearest points of its centre, nearest first, the centre itself first
    d = torch.cdist(p.centers, pos)
    ref = d.topk(16, largest=False).indices.sort(-1).values
    assert torch.equal(p.index.sort(-1).values, ref)
    assert torch.equal(p.index[..., 0], p.center_index)
    back = torch.gather(pos, 1, p.index.reshape(3, -1, 1).expand(-1, -1, 3)).reshape(3, 20, 16, 3)
    torch.testing.assert_close(p.neighborhood + p.centers.unsqueeze(2), back)
    assert (p.neighborhood[..., 0, :] == 0).all()


def test_backends_agree_and_gradients_reach_points():
    pos = torch.rand(2, 200, 3, generator=torch.Generator().manual_seed(3), requires_grad=True)
    a = group_points(pos, 10, 8, torch.Generator().manual_seed(4), backend="numba")
    b = group_points(pos, 10, 8, torch.Generator().manual_seed(4), backend="torch")
    assert torch.equal(a.center_index, b.center_index)
    assert torch.equal(a.index, b.index)
    (a.neighborhood.pow(2).sum() + a.centers.sum()).backward()
    assert pos.grad is not None and pos.grad.abs().sum() > 0


def test_batch_formats():
    pos = torch.rand(2, 50, 3)
    batch = Batch.from_data_list([Data(pos=pos[0]), Data(pos=pos[1])])
    assert torch.equal(as_point_batch(batch), pos)
    assert torch.equal(as_point_batch(pos), pos)
    with pytest.raises(ValueError):
        as_point_batch(Batch.from_data_list([Data(pos=pos[0]), Data(pos=pos[1, :49])]))
    with pytest.raises(ValueError):
        group_points(pos, 51, 4)
