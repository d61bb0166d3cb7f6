"""Decoding told the target's length (eos = oracle): the views decode as the evaluation scores."""

from __future__ import annotations

import copy

import torch

from playground.core.config import TrainConfig
from playground.core.tasks import EOS_ID
from playground.model.seq2seq import Seq2Seq

NEVER = -1e4  # a logit no other reaches: p(<eos>) underflows to 0, and log-probabilities stay finite


def decoding_model(model: Seq2Seq, config: TrainConfig) -> Seq2Seq:
    """The model its views decode: with eos = oracle, a copy whose output layer never picks <eos>, so greedy
    decoding, beam search and step-through run for the length they are given (the target's) and never stop on
    their own, as free-running runs in the evaluation; otherwise the model itself."""
    if config.eos != "oracle":
        return model
    told = copy.deepcopy(model)
    with torch.no_grad():
        told.decoder.fc_out.bias[EOS_ID] = NEVER
    return told


def decoding_steps(config: TrainConfig, target: list[str], limit: int) -> int:
    """How many steps a view decodes: an oracle the target's length when it is known, else the decoding limit."""
    return len(target) if config.eos == "oracle" and target else limit
