"""Decode: one source token by token, greedy against beam search, and where exposure bias compounds."""

from __future__ import annotations

import math

import streamlit as st

from playground.course.glossary import term_link
from playground.inspection.decoding import (
    FED_OWN,
    FED_TRUE,
    MAX_BEAM_WIDTH,
    StepThrough,
    beam_search,
    check_source,
    greedy,
    position_errors,
    step_through,
)
from playground.plots import notes
from playground.plots.decoding_figures import attention_row_figure, position_errors_figure, top_k_figure
from playground.plots.state_figures import state_heatmap
from playground.ui.inspection import Source, inspection_sidebar
from playground.ui.runs import chart
from playground.ui.settings import BOUND, share_slot
from playground.ui.text import plain

PLAY_SECONDS = 0.8
FED_BADGES = {FED_TRUE: ":green-badge[true token (teacher-forced)]", FED_OWN: ":orange-badge[model's own output]",
              "start": ":gray-badge[start of decoding]"}


def decoding_settings(has_target: bool) -> tuple[float, int, int, int, bool]:
    st.subheader("Decoding")
    gamma = st.slider("Teacher forcing (gamma)", 0.0, 1.0, 0.0, 0.05, key="dc_gamma", **BOUND, disabled=not has_target,
                      help="Share of steps fed the target's true token instead of the model's own output; needs a "
                           "target. 0 is free-running (what the model does at test time)")
    seed = st.number_input("Coin seed", 0, 1_000_000, 0, key="dc_seed", **BOUND,
                           help="Seeds the coins that decide which steps are teacher-forced, so the same gamma "
                                "always forces the same steps")
    top_k = st.slider("Top-k shown", 2, 10, 5, key="dc_top_k", **BOUND,
                      help="How many of the most probable next tokens each step's bar chart shows")
    width = st.slider("Beam width", 1, MAX_BEAM_WIDTH, 3, key="dc_width", **BOUND,
                      help="How many prefixes beam search keeps at each step; 1 is exactly greedy decoding")
    length_norm = st.toggle("Length normalisation", key="dc_length_norm", **BOUND,
                            help="Rank finished beams by log-prob per token, so longer outputs are not "
                                 "penalised merely for multiplying more probabilities")
    return gamma, int(seed), top_k, width, length_norm


def move(delta: int, last: int) -> None:
    st.session_state.dc_step = min(max(st.session_state.dc_step + delta, 0), last)


@st.fragment(run_every=PLAY_SECONDS if st.session_state.get("dc_playing") else None)
def stepper(walk: StepThrough, target: list[str]) -> None:
    """The current step; Play advances it on the fragment's timer and stops (rerunning the page) at the end."""
    last = len(walk.steps) - 1
    playing = st.session_state.get("dc_playing", False)
    if playing and st.session_state.dc_step < last:
        st.session_state.dc_step += 1
    elif playing:
        st.session_state.dc_playing = False
        st.rerun()
    buttons = st.container(horizontal=True)  # one row that wraps at 800 px instead of cutting labels
    buttons.button("Previous", key="dc_prev", on_click=move, args=(-1, last), disabled=playing, width="content",
                   help="Back one decoder step", icon=":material/skip_previous:")
    buttons.button("Next", key="dc_next", on_click=move, args=(1, last), disabled=playing, width="content",
                   help="Forward one decoder step", icon=":material/skip_next:")
    if buttons.button("Pause" if playing else "Play", key="dc_play", icon=":material/play_arrow:", width="content",
                      help=f"Advance one step every {PLAY_SECONDS} s until the end"):
        st.session_state.dc_playing = not playing
        if not playing and st.session_state.dc_step >= last:
            st.session_state.dc_step = 0
        st.rerun()
    buttons.button("Restart", key="dc_restart", on_click=move, args=(-last, last), help="Back to step 0",
                   icon=":material/first_page:", width="content")
    t = st.session_state.dc_step
    step = walk.steps[t]
    st.markdown(f"**Step {t} of {last}** · fed **{plain(step.fed)}** {FED_BADGES[step.fed_from]} · chose "
                f"**{plain(step.chosen)}** (p = {math.exp(step.logprob):.1%}) · running "
                f"log-prob **{step.running_logprob:.3f}**")
    st.caption("Emitted so far: " + plain(" ".join(walk.emitted[: t + 1])))
    # side by side from about 1,100 px; narrower, the states wrap below rather than cut the top-k chart's title
    row = st.container(horizontal=True, key="dc_step_charts")
    left, right = row.container(width=440), row.container(width=440)
    left.caption("Orange: the token chosen (argmax); green outline: the target's token at this step.")
    chart(left, top_k_figure(step, target[t] if t < len(target) else None), "dc_top_k_chart", notes.TOP_K)
    if step.attention is not None:
        chart(left, attention_row_figure(step), "dc_attention_row", notes.ATTENTION_ROW)
    labels = [f"{s.fed}→{s.chosen}" for s in walk.steps[: t + 1]]
    for index, layer in enumerate(walk.capture.decoder):
        chart(right, state_heatmap(layer.h[: t + 1], labels, f"Decoder layer {index + 1}: h_t so far",
                                   height=320, value_name="h", x_title="step (input → prediction)"), f"dc_h_{index}",
              notes.STATES)


def beam_view(source: Source, src: list[str], limit: int, width: int, length_norm: bool) -> None:
    model = source.model()
    best = greedy(model, source.src_vocab, source.tgt_vocab, src, limit)
    search = beam_search(model, source.src_vocab, source.tgt_vocab, src, limit, width, length_norm)
    join = source.tgt_vocab.join
    top = search.beams[0]
    verdict = ("finds a more probable output than greedy" if top.logprob > best.logprob + 1e-6
               else "agrees with greedy" if top.tokens == best.tokens else "ranks another output first")
    st.markdown(f"Greedy: **{plain(join(best.tokens))}** (log-prob {best.logprob:.3f}). Beam search of width "
                f"{width} {verdict}: **{plain(join(top.tokens))}** (log-prob {top.logprob:.3f}).")
    tables = st.container(key="dc_beam_tables")
    tables.dataframe([{"rank": rank, "output": join(beam.tokens), "log-prob": round(beam.logprob, 4),
                   "per token": round(beam.score(True), 4), "ended with <eos>": beam.finished}
                  for rank, beam in enumerate(search.beams, 1)], key="dc_beams", hide_index=True)
    tables.caption("Beams at each step, best first (a row that ends in <eos> leaves the beam):")
    tables.dataframe([{"step": step, "rank": rank, "prefix": " ".join(beam.tokens), "log-prob": round(beam.logprob, 4)}
                  for step, beams in enumerate(search.history) for rank, beam in enumerate(beams, 1)],
                 key="dc_beam_steps", hide_index=True, height=300)


st.title("Decode, step by step")
st.caption(f"{term_link('greedy decoding', 'Greedy decoding')} feeds the model its own "
           f"{term_link('argmax')}; {term_link('teacher forcing')} feeds the true token. Step through one source, "
           f"then see where {term_link('beam search')} and {term_link('exposure bias')} change the answer.")
source, example = inspection_sidebar("dc", share_slot("decode"))
if source and example:
    src, tgt = example
    with st.sidebar:
        gamma, seed, top_k, width, length_norm = decoding_settings(bool(tgt))
    try:
        source_notes = check_source(source.task, source.src_vocab, src)
    except ValueError as error:
        st.error(str(error))
        st.stop()
    for note in source_notes:
        st.info(f"Note: {note}.")
    limit = source.task.decode_limit(len(src))
    forced = tgt if tgt and gamma > 0 else None
    walk = step_through(source.model(), source.src_vocab, source.tgt_vocab, src, limit, forced, gamma, seed, top_k)
    signature = (source.label, tuple(src), tuple(tgt), gamma, seed)
    if st.session_state.get("dc_signature") != signature:
        st.session_state.dc_signature, st.session_state.dc_step, st.session_state.dc_playing = signature, 0, False
    st.session_state.dc_step = min(st.session_state.get("dc_step", 0), len(walk.steps) - 1)
    if source.live:
        st.caption(f"{source.label} is training: this decodes its weights as of this page's last rerun.")
    st.subheader(plain(f"Step through: {source.src_vocab.join(src)}"
                       + (f" (target {source.tgt_vocab.join(tgt)})" if tgt else "")))
    stepper(walk, tgt)

    st.subheader("Greedy against beam search")
    beam_view(source, src, limit, width, length_norm)

    st.subheader("Where errors compound")
    if not source.val_pairs:
        st.info("Error rates by position need the validation set, which this model's task could not regenerate.")
    else:
        every_arm = source.arms is not None and st.toggle(
            "Every model of this comparison", key="dc_all_arms",
            help="One colour per model (teacher-forcing ratio), to see which ratio compounds its errors least")
        errors = ({arm.label: position_errors(arm.model, arm.task, arm.val_pairs) for arm in source.arms()}
                  if every_arm and source.arms else
                  {"": position_errors(source.model(), source.task, source.val_pairs)})
        chart(st, position_errors_figure(errors), "dc_positions", notes.POSITIONS)
        st.caption("Teacher-forced: fed the true prefix. Free-running: fed its own outputs, so one mistake can cause "
                   "the next. The dashed line is the free-running error among examples whose earlier positions were "
                   "all right; the gap above it is what earlier mistakes add.")
