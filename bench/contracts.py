"""Performance contracts: how a fast path must run, checked by counting what it calls, so that a change that keeps
the numbers right but loses the speed shows in `bench` output rather than in a test of the model's internals."""

from __future__ import annotations

import torch

from playground.model.seq2seq import Seq2Seq


def decoder_calls_at_gamma_one(steps: int = 6, batch: int = 4) -> list[int]:
    """The sequence length of every call of the decoder's recurrent module in one forward at γ = 1 (DESIGN: one
    fused call over the whole shifted target)."""
    generator = torch.Generator().manual_seed(0)
    model = Seq2Seq(src_vocab_size=13, tgt_vocab_size=11, emb_dim=6, hidden_dim=8)
    src = torch.randint(4, 13, (batch, 5), generator=generator)
    tgt = torch.randint(4, 11, (batch, steps), generator=generator)
    calls: list[int] = []
    hook = model.decoder.lstm.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[1]))
    with torch.no_grad():
        model(src, tgt, 1.0)
    hook.remove()
    return calls


def check() -> dict[str, bool]:
    """Each contract, held or not."""
    steps = 6
    return {"gamma_1_is_one_fused_decoder_call": decoder_calls_at_gamma_one(steps) == [steps]}


def report(held: dict[str, bool]) -> str:
    return "\n".join(f"contract {name}: {'held' if ok else 'BROKEN'}" for name, ok in held.items())
