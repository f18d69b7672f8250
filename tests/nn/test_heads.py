"""ScalarHead composes fc2 and the output layer: same values and gradients as running them in a row."""

import torch

from geomask.nn.heads import ScalarHead


def _explicit(head: ScalarHead, x: torch.Tensor) -> torch.Tensor:
    return head.out(head.mlp(x)).squeeze(-1)


def test_scalar_head_equals_layers_in_a_row_values_and_gradients():
    torch.manual_seed(0)
    head = ScalarHead(16, dropout=0.25).double()
    for p in head.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    x = torch.randn(300, 16, dtype=torch.float64)
    for training in (False, True):
        head.train(training)
        torch.manual_seed(1)
        a = head(x)
        grads_a = torch.autograd.grad((a * torch.arange(300.0, dtype=torch.float64)).sum(), list(head.parameters()))
        torch.manual_seed(1)
        b = _explicit(head, x)
        grads_b = torch.autograd.grad((b * torch.arange(300.0, dtype=torch.float64)).sum(), list(head.parameters()))
        assert a.shape == (300,)
        torch.testing.assert_close(a, b)
        for ga, gb in zip(grads_a, grads_b):
            torch.testing.assert_close(ga, gb)
    # dropout is live in training: two draws differ
    head.train()
    assert not torch.equal(head(x), head(x))
