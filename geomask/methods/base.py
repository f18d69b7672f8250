"""The one base class of every pretraining method: the interface the engine, the evaluations and the tests use.

A method is five parts (masker, encoder, target, decoder, loss; see ARCHITECTURE.md) behind one interface:

* ``forward(batch, generator) -> {"loss": total, **terms}`` has **no side effects**: it changes no buffer,
  counter, teacher or module mode, and leaves the global torch RNG as it found it.  Subclasses implement
  :meth:`Method.loss_terms`; ``forward`` runs it inside :func:`seeded_rng` seeded by :func:`peek_seed` of the
  generator, so whatever still draws from the global RNG (``nn.Dropout``, attention dropout,
  :func:`geomask.nn.dropout.dropout`) draws from a stream fixed by the generator: the same generator state
  gives the same result, and the global RNG state is restored on exit.  The generator itself is advanced by
  the draws of the masks, augmentations and Gumbel noise (it is the explicit source of the step's randomness).
* ``on_train_step_end(step)``: EMA teachers, step counters and schedules, called by the training engine
  after every optimiser step (:class:`~geomask.train.module.MethodModule` calls it in ``optimizer_step``,
  before Lightning's ``on_train_batch_end`` callbacks write checkpoints) with the 0-based index of the step
  just taken.  A hand-written loop calls it after ``optimizer.step()``.
* ``encoder``: the backbone over the shape, an ``nn.Module`` (the engine exports its weights as
  ``encoder.pt``).
* ``features(batch)``: the frozen-evaluation features of a batch (call it in eval mode).
* ``data_kinds``: class attribute, the training-data kinds (``data.kind`` of the training config) the method
  trains on; :func:`geomask.methods.registry.method_data_kinds` reads it (the only place they are declared).
* ``takes_packed``: class attribute, True when the method trains on packed sequence batches
  (``data.pack_length > 0``); it is not inherited: a subclass that takes them says so itself, so a method built on
  one that does (CLM on MLM) is refused at config time rather than mis-reading a packed row.
* ``unused_parameters()``: names of trainable parameters that get no gradient by construction (the method
  contract test skips them); frozen parts (``requires_grad=False``, e.g. an EMA teacher) are not listed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from geomask.masking.base import resolve_generator

__all__ = ["GRAPH_DATA", "SCENE_DATA", "Method", "peek_seed", "seeded_rng"]

# the data kinds of the circuit-graph methods: AIG graphs with or without Verilog (prep folders or the embedded
# corpus), or random ones
GRAPH_DATA = ("circuits", "pairs", "synthetic", "corpus", "corpus_pairs")
# the data kinds of the scene methods: prepared scans, or the generated rooms (the CPU configs' default data)
SCENE_DATA = ("scans", "scenes")

# xor'd into the peeked word, so the global-RNG stream is seeded apart from the generator's own next draw
_GLOBAL_STREAM = 0x2545F4914F6CDD1D


def peek_seed(generator: torch.Generator) -> int:
    """A 63-bit seed read from ``generator``'s next draw *without advancing it* (a copy of its state draws).

    The masks drawn next from ``generator`` are therefore the same whether or not a seed was peeked.
    """
    g = generator.clone_state()
    word = int(torch.randint(0, 2**62, (), generator=g, device=g.device))
    return (word ^ _GLOBAL_STREAM) & ((1 << 63) - 1)


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block with the global RNG forked and seeded with ``seed``; its state is restored on exit.

    The CPU generator always; also the default generator of ``device`` when that is an accelerator (only that
    one device's, so other devices' streams are left alone).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
        return
    mod = torch.get_device_module(dev.type)
    index = dev.index if dev.index is not None else mod.current_device()
    with torch.random.fork_rng(devices=[index], device_type=dev.type):
        torch.default_generator.manual_seed(seed)
        if dev.type == "cuda":
            torch.cuda.default_generators[index].manual_seed(seed)
        else:
            mod.manual_seed(seed)
        yield


class Method(nn.Module):
    """Base class of the pretraining methods (see the module docstring for the contract).

    Subclasses set ``data_kinds``, an ``encoder`` module, and implement :meth:`loss_terms` and
    :meth:`features`; they override :meth:`on_train_step_end` when they keep state across steps and
    :meth:`unused_parameters` when some trainable parameters get no gradient by design.
    """

    data_kinds: ClassVar[tuple[str, ...]] = ()
    takes_packed: ClassVar[bool] = False
    encoder: nn.Module

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "takes_packed" not in cls.__dict__:  # opt in per class (module docstring)
            cls.takes_packed = False

    def forward(self, batch: Any, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"loss": total, **named terms}`` of a batch; masks and other random draws come from ``generator``
        (a fresh OS-seeded one when ``None``).  No side effects (module docstring)."""
        gen = resolve_generator(generator)
        with seeded_rng(peek_seed(gen), self._rng_device()):
            return self.loss_terms(batch, gen)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """The losses of :meth:`forward` (subclasses implement this; it must not change any state)."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss_terms(batch, generator)")

    def on_train_step_end(self, step: int) -> None:
        """After optimiser step ``step`` (0-based): EMA updates, counters, schedules.  Nothing by default."""

    def features(self, batch: Any) -> Any:
        """Evaluation features of ``batch`` (call in eval mode)."""
        raise NotImplementedError(f"{type(self).__name__} must implement features(batch)")

    def unused_parameters(self) -> set[str]:
        """Names of trainable parameters that get no gradient by construction (none by default)."""
        return set()

    def _rng_device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")
