"""Decode: one source token by token (overruled where the student feeds another token), greedy against beam
search, where exposure bias compounds and whether the model recovers from a wrong token."""

from __future__ import annotations

import math

import streamlit as st

from playground.core.tasks import SPECIALS, Vocab
from playground.course import term_link
from playground.experiments.comparison import arm_of, forcing_label
from playground.inspection import (
    FED_CHOSEN,
    FED_OWN,
    FED_TRUE,
    MAX_BEAM_WIDTH,
    StepThrough,
    beam_search,
    check_prefix,
    check_source,
    greedy,
    position_errors,
    step_through,
)
from playground.inspection.oracle import decoding_steps
from playground.plots import (
    attention_row_figure,
    head_rows_figure,
    notes,
    position_errors_figure,
    state_heatmap,
    top_k_figure,
)
from playground.ui import (
    BOUND,
    Source,
    chart,
    exposures,
    inspection_sidebar,
    recovery_view,
    share_slot,
    source_models,
)
from playground.ui.text import plain

PLAY_SECONDS = 0.8
FED_BADGES = {FED_TRUE: ":green-badge[true token (teacher-forced)]", FED_OWN: ":orange-badge[model's own output]",
              FED_CHOSEN: ":violet-badge[your token (what if)]", "start": ":gray-badge[start of decoding]"}


def decoding_settings(has_target: bool) -> tuple[str, float, int, int, int, bool]:
    st.subheader("Decoding")
    if (pending := st.session_state.pop("dc_prefix_pending", None)) is not None:  # from the step-through's button
        st.session_state.dc_prefix = pending
    prefix = st.text_input("What-if prefix", key="dc_prefix", **BOUND,
                           help="Output tokens fed to the decoder first, written like a target (e.g. fa): the model "
                                "then continues on its own, and beam search from there too. Empty: the model decodes "
                                "on its own. 'Feed this token instead' in the step-through fills it in")
    gamma = st.slider("Teacher forcing (gamma)", 0.0, 1.0, 0.0, 0.05, key="dc_gamma", **BOUND,
                      disabled=not has_target or bool(prefix.strip()),
                      help="Share of steps fed the target's true token instead of the model's own output; needs a "
                           "target, and no what-if prefix. 0 is free-running (what the model does at test time)")
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
    return prefix, gamma, int(seed), top_k, width, length_norm


def move(delta: int, last: int) -> None:
    st.session_state.dc_step = min(max(st.session_state.dc_step + delta, 0), last)


def overrule(walk: StepThrough, t: int, vocab: Vocab, limit: int) -> None:
    """'Feed this token instead': the output so far with another token at step t becomes the what-if prefix, and
    the page shows the step after it (a rerun of the whole page: the continuation and the states change)."""
    if t + 1 >= limit:
        return
    row = st.container(horizontal=True, key="dc_overrule", vertical_alignment="bottom")
    others = [token for token in vocab.itos[len(SPECIALS):] if token != walk.steps[t].emitted]
    instead = row.selectbox(f"Instead of {walk.steps[t].emitted}", others, key="dc_instead", width=180,
                            help="A token to emit at this step in place of the model's, so the next step is fed it")
    if row.button("Feed this token instead", key="dc_feed", icon=":material/alt_route:", width="content",
                  help="What if the model had emitted this token here? It is fed to the next step and the model "
                       "continues on its own (the what-if prefix in the sidebar)"):
        st.session_state.dc_prefix_pending = vocab.join([step.emitted for step in walk.steps[:t]] + [instead])
        st.session_state.dc_step_pending = t + 1
        st.rerun()


@st.fragment(run_every=PLAY_SECONDS if st.session_state.get("dc_playing") else None)
def stepper(walk: StepThrough, target: list[str], vocab: Vocab, limit: int) -> None:
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
    chose = f"chose **{plain(step.chosen)}** (p = {step.top[0][1]:.1%})"
    if step.overruled_by:
        chose += f", overruled by **{plain(step.overruled_by)}** (p = {math.exp(step.logprob):.1%})"
    st.markdown(f"**Step {t} of {last}** · fed **{plain(step.fed)}** {FED_BADGES[step.fed_from]} · {chose} · running "
                f"log-prob **{step.running_logprob:.3f}**")
    st.caption("Emitted so far: " + plain(" ".join(walk.emitted[: t + 1])))
    if not playing:
        overrule(walk, t, vocab, limit)
    # side by side from about 1,100 px; narrower, the states wrap below rather than cut the top-k chart's title
    row = st.container(horizontal=True, key="dc_step_charts")
    left, right = row.container(width=440), row.container(width=440)
    left.caption("Orange: the token chosen (argmax); green outline: the target's token at this step.")
    chart(left, top_k_figure(step, target[t] if t < len(target) else None), "dc_top_k_chart", notes.TOP_K)
    if step.attention is not None:
        chart(left, attention_row_figure(step), "dc_attention_row", notes.ATTENTION_ROW)
    if "cross" in walk.capture.heads:
        chart(left, head_rows_figure(walk.capture.heads["cross"][-1, :, t], walk.capture.src_tokens, t),
              "dc_head_rows", notes.HEADS)
    labels = [f"{s.fed}→{s.emitted}" for s in walk.steps[: t + 1]]
    for index, layer in enumerate(walk.capture.decoder):
        chart(right, state_heatmap(layer.h[: t + 1], labels, f"Decoder layer {index + 1}: h_t so far",
                                   height=320, value_name="h", x_title="step (input → prediction)"), f"dc_h_{index}",
              notes.STATES)


def beam_view(source: Source, src: list[str], limit: int, width: int, length_norm: bool, prefix: list[str]) -> None:
    model = source.model()
    best = greedy(model, source.src_vocab, source.tgt_vocab, src, limit, prefix)
    search = beam_search(model, source.src_vocab, source.tgt_vocab, src, limit, width, length_norm, prefix)
    if prefix:
        st.caption(f"Both continue after the what-if prefix {source.tgt_vocab.join(prefix)}; the log-probabilities "
                   "include its tokens.")
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
        prefix_text, gamma, seed, top_k, width, length_norm = decoding_settings(bool(tgt))
    try:
        source_notes = check_source(source.task, source.src_vocab, src)
    except ValueError as error:
        st.error(str(error))
        st.stop()
    for note in source_notes:
        st.info(f"Note: {note}.")
    limit = decoding_steps(source.config, tgt, source.task.decode_limit(len(src)))
    prefix = source.tgt_vocab.tokenize(prefix_text)
    try:
        check_prefix(source.tgt_vocab, prefix, limit)
    except ValueError as error:
        st.error(f"The what-if prefix is not used: {error}.")
        prefix = []
    forced = tgt if tgt and gamma > 0 and not prefix else None
    walk = step_through(source.model(), source.src_vocab, source.tgt_vocab, src, limit, forced, gamma, seed, top_k,
                        prefix)
    signature = (source.label, tuple(src), tuple(tgt), gamma, seed, tuple(prefix))
    if st.session_state.get("dc_signature") != signature:
        st.session_state.dc_signature, st.session_state.dc_playing = signature, False
        st.session_state.dc_step = st.session_state.pop("dc_step_pending", 0)
    st.session_state.dc_step = min(st.session_state.get("dc_step", 0), len(walk.steps) - 1)
    if source.live:
        st.caption(f"{source.label} is training: this decodes its weights as of this page's last rerun.")
    st.subheader(plain(f"Step through: {source.src_vocab.join(src)}"
                       + (f" (target {source.tgt_vocab.join(tgt)})" if tgt else "")))
    if prefix:
        st.caption(plain(f"What if: the first {len(prefix)} output tokens are fed as {source.tgt_vocab.join(prefix)} "
                         "(the sidebar's what-if prefix); the model continues on its own after them."))
        st.button("Clear the what-if", key="dc_clear_prefix", icon=":material/undo:",
                  on_click=lambda: st.session_state.update(dc_prefix_pending=""),
                  help="Let the model decode on its own again")
    stepper(walk, tgt, source.tgt_vocab, limit)

    st.subheader("Greedy against beam search")
    beam_view(source, src, limit, width, length_norm, prefix)

    st.subheader("Where errors compound")
    if not source.val_pairs:
        st.info("Error rates by position need the validation set, which this model's task could not regenerate.")
    else:
        every_arm = source.arms is not None and st.toggle(
            "Every model of this comparison", key="dc_all_arms",
            help="One colour per arm (teacher-forcing ratio or model), its seeds as a band, to see which compounds "
                 "its errors least")
        errors = ([(arm_of(arm.label, arm.config), position_errors(arm.model, arm.task, arm.val_pairs,
                                                                   arm.config.eos))
                   for arm in source.arms()] if every_arm and source.arms else
                  [(forcing_label(source.config), position_errors(source.model(), source.task, source.val_pairs,
                                                                  source.config.eos))])
        chart(st, position_errors_figure(errors), "dc_positions", notes.POSITIONS)
        st.caption("Teacher-forced: fed the true prefix. Free-running: fed its own outputs, so one mistake can cause "
                   "the next. The dashed line is the free-running error among examples whose earlier positions were "
                   "all right; the gap above it is what earlier mistakes add.")

        st.subheader("Does it recover from a wrong token?")
        identity, models = source_models(source, every_arm)
        recovery_view(st, exposures("dc_probe", identity, models, drift=False), "dc")
