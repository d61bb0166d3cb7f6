"""The words the app uses, explained once for a student who knows neural networks but not seq2seq models.

Pure data: the Glossary page renders it, and help texts or lessons may point to a term by its key. A formula is
LaTeX (drawn with `st.latex`); the schedules' formulas are those of `playground/core/forcing.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    title: str
    text: str
    formula: str = ""  # LaTeX, empty when words are enough


TERMS: dict[str, Term] = {term.title.lower(): term for term in (
    Term("Seq2seq model",
         "A sequence-to-sequence model turns one sequence into another (here: a string of symbols into its "
         "reverse, its sorted copy, a sum ...). An **encoder** LSTM reads the source one token at a time; its final "
         "hidden and cell state (h_T, c_T) is handed to a **decoder** LSTM, which writes the target one token at "
         "a time, each step predicting a probability for every token of the vocabulary."),
    Term("Teacher forcing",
         "While training, the decoder's input at step t is the **true** previous target token y_{t-1}, whatever "
         "the decoder predicted at step t-1. Every step then learns from a correct history, so training is fast "
         "and stable. The teacher-forcing ratio γ is the chance that a step is fed the truth; with probability "
         "1 - γ it is fed its own previous prediction instead.",
         r"x_t = \begin{cases} y_{t-1} & \text{with probability } \gamma \\ "
         r"\arg\max_v p_{t-1}(v) & \text{otherwise} \end{cases}"),
    Term("Free-running",
         "Decoding with no help: every step is fed the decoder's own previous prediction (γ = 0, greedy argmax). "
         "This is how the model is used once trained, since the true target is unknown. The app scores every "
         "model both ways on the same validation examples: teacher-forced and free-running."),
    Term("Exposure bias",
         "A model trained only with teacher forcing has never seen its own mistakes as input. At test time, "
         "running free, one wrong token becomes the next step's input, a history it was never trained on, and "
         "errors compound along the sequence. It shows as a **gap**: accuracy teacher-forced minus accuracy "
         "free-running. Longer sequences give errors more steps to compound, so the gap grows with length."),
    Term("Token accuracy",
         "The share of target tokens predicted right, over every non-padding position. It gives partial credit: "
         "a sequence with one wrong token out of ten still counts 90%. Because it looks at every position, it is "
         "the measure in which the exposure-bias gap shows."),
    Term("Exact match",
         "The share of sequences whose every token (and the end marker) is right. It is strict: one wrong token "
         "makes the whole sequence wrong. Under greedy decoding exact match is the same teacher-forced and "
         "free-running: a sequence that is fully right under teacher forcing was fed exactly its own predictions, "
         "so it is right when running free too. That is why the gap is measured in token accuracy."),
    Term("Scheduled sampling",
         "A curriculum for γ (Bengio et al., 2015): start with full teacher forcing so the model learns quickly, "
         "then lower γ step by step so it learns to continue from its own predictions. Every schedule moves γ "
         "from its start towards a final value γ_end by a decay factor d(t) between 0 and 1.",
         r"\gamma_t = \gamma_{end} + (\gamma_{start} - \gamma_{end})\, d(t)"),
    Term("Constant schedule", "γ stays where it starts for the whole run.", r"d(t) = 1"),
    Term("Linear schedule",
         "γ falls in a straight line from its start to its final value over T decay steps, then stays there.",
         r"d(t) = \max\left(0,\ 1 - \frac{t}{T}\right)"),
    Term("Exponential schedule",
         "γ approaches its final value by the same factor k (just below 1) every step: fast at first, then "
         "slower. With k = 0.999 the distance halves about every 700 steps.",
         r"d(t) = k^{t}, \quad 0 < k < 1"),
    Term("Inverse-sigmoid schedule",
         "γ stays near its start for a while, then falls along an S-curve: halfway at about t = k ln k steps. A "
         "larger k keeps teacher forcing on for longer.",
         r"d(t) = \frac{k}{k + e^{t / k}}, \quad k \ge 1"),
    Term("Hidden state",
         "h_t, a vector of `hidden size` numbers, the LSTM's output at step t: what the next layer, the output "
         "layer and the next step read. The encoder's last h_T (with c_T) is the only thing the decoder learns "
         "about the source: a bottleneck of fixed size, however long the source is."),
    Term("Cell state",
         "c_t, the LSTM's memory, as long as h_t. It is changed only by adding and forgetting (no squashing "
         "matrix product in between), so information can travel over many steps. h_t is a gated, squashed view "
         "of it.",
         r"c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)"),
    Term("Gates",
         "Four vectors an LSTM computes at every step from its input x_t and previous h_{t-1}. The **input gate** "
         "i (0 to 1) says how much of the candidate g (-1 to 1) is written into the cell; the **forget gate** f "
         "(0 to 1) how much of the old cell is kept; the **output gate** o (0 to 1) how much of the cell shows in "
         "h_t. σ is the logistic sigmoid.",
         r"i_t, f_t, o_t = \sigma(W x_t + U h_{t-1} + b), \qquad g_t = \tanh(W_g x_t + U_g h_{t-1} + b_g)"),
    Term("Bottleneck",
         "The decoder starts from the encoder's final (h_T, c_T) alone. A fixed-size vector can hold a short "
         "sequence exactly but not an arbitrarily long one, so accuracy falls with length once the sequence "
         "outgrows the hidden size. Attention (the Attention setting) removes the bottleneck by letting the decoder "
         "look back at every encoder state."),
    Term("Attention",
         "A way for the decoder to look back at the whole source at every output step instead of relying on the "
         "encoder's final state alone (Bahdanau et al. 2015; Luong et al. 2015). Here it is Luong's global "
         "attention, after the recurrence: the decoder's top h_t scores every encoder output h̄_s (dot: their dot "
         "product; general: through a matrix W_a; additive: a small network v_aᵀ tanh(W_a h_t + U_a h̄_s)), a "
         "softmax turns the scores into weights α over the source positions (padding excluded), the weighted sum "
         "of the encoder's outputs is the context vector ctx_t, and the output layer reads "
         "h̃_t = tanh(W_c [ctx_t; h_t]) instead of h_t.",
         r"\alpha_{ts} = \frac{e^{\mathrm{score}(h_t, \bar h_s)}}{\sum_{s'} e^{\mathrm{score}(h_t, \bar h_{s'})}}, "
         r"\qquad \tilde h_t = \tanh(W_c [\mathrm{ctx}_t; h_t])"),
    Term("Alignment",
         "The attention weights α_ts drawn as a table, output step t by source position s: which source tokens "
         "each output was made from. For reverse, a trained model's alignment is the anti-diagonal (the first "
         "output looks at the last source token); for copy, the diagonal. It starts flat and sharpens as the model "
         "learns."),
    Term("Context vector",
         "With attention, ctx_t: the α-weighted sum of the encoder's outputs at output step t, a summary of the "
         "source made for that step. It is written ctx_t, not c_t, because c_t is the LSTM's cell state. Without "
         "attention there is no context vector: the decoder starts from the encoder's final state (h_T, c_T), one "
         "summary for all steps, the bottleneck.",
         r"\mathrm{ctx}_t = \sum_s \alpha_{ts}\, \bar h_s"),
    Term("GRU",
         "The gated recurrent unit (Cho et al. 2014), the Cell setting's other choice: like an LSTM without a "
         "separate cell state. A reset gate r decides how much of h_{t-1} the candidate n sees; an update gate z "
         "mixes the old state and the candidate. Three gates instead of four: a quarter fewer weights.",
         r"r, z = \sigma(W x_t + U h_{t-1} + b), \quad n = \tanh(W_n x_t + r \odot (U_n h_{t-1} + b_n)), "
         r"\quad h_t = (1 - z) \odot n + z \odot h_{t-1}"),
    Term("Cross-entropy loss",
         "The training loss: minus the log of the probability the model gave the right token, averaged over every "
         "non-padding target token. 0 means certain and right; ln V (V = vocabulary size) is a uniform guess.",
         r"\mathcal{L} = -\frac{1}{N} \sum_{t} \log p_t(y_t)"),
    Term("Perplexity",
         "e to the power of the cross-entropy loss: the number of tokens the model is, on average, as unsure "
         "between as if it picked uniformly among them. 1 is perfect; the vocabulary size is blind guessing.",
         r"\mathrm{PPL} = e^{\mathcal{L}}"),
    Term("Seed",
         "One whole number that fixes every random choice of a run: the synthetic data, the initial weights and "
         "the teacher-forcing coins. The same seed repeats a CPU run exactly; different seeds show how much of a "
         "difference between two settings is only luck."),
    Term("Special tokens",
         "Every vocabulary reserves four ids: `<pad>` (0) fills a short sequence up to the batch's length and is "
         "ignored by the loss; `<sos>` (1), start of sequence, is the decoder's first input; `<eos>` (2), end of "
         "sequence, is the last target token, and decoding stops when the model writes it; `<unk>` (3) stands for "
         "a symbol outside the vocabulary."),
    Term("Embedding",
         "A learned vector per token (its row of nn.Embedding): the network reads tokens as these vectors. The "
         "encoder and the decoder each have their own; the embedding size is their length."),
    Term("Softmax",
         "Turns the decoder's scores (logits) o_t into probabilities over the vocabulary that sum to 1.",
         r"p_t(v) = \frac{e^{o_t(v)}}{\sum_{w} e^{o_t(w)}}"),
    Term("Argmax",
         "The token with the largest probability at a step. Greedy decoding feeds it back as the next input."),
    Term("Greedy decoding",
         "Free-running decoding that takes the argmax at every step: fast, and what the app's free-running scores "
         "use. It can miss a better sequence whose first token was not the single most probable one."),
    Term("Beam search",
         "Decoding that keeps the `width` most probable prefixes (beams) at every step instead of one, extends "
         "each by every token, and keeps the best `width` again. Width 1 is exactly greedy decoding."),
    Term("Log-probability",
         "The natural logarithm of a sequence's probability: the sum over its steps of log p(token). It is "
         "negative, and closer to 0 is more probable; adding logs avoids multiplying many small numbers."),
    Term("Length normalisation",
         "Beam search compares finished beams by log-probability per token instead of in total, so a longer "
         "output is not ranked lower merely because it multiplies more probabilities below 1."),
    Term("Top-k",
         "The k most probable next tokens at a step: what the Decode page's bar chart shows."),
    Term("Context vector",
         "The encoder's final state (h_T, c_T): all the decoder knows about the source (see Bottleneck). The "
         "Hidden states page projects many of them onto a plane."),
    Term("PCA",
         "Principal component analysis: the plane (two directions) along which a cloud of vectors varies most. "
         "Projecting context vectors onto it shows which examples the encoder holds apart; the axis titles say "
         "how much of the variance each direction keeps."),
    Term("Nats",
         "The unit of a loss computed with the natural logarithm: cross-entropy in nats per token. A model that "
         "guesses uniformly among |V| tokens scores ln |V| nats."),
    Term("Arm",
         "One curve of a comparison or study: a setting of teacher forcing (a constant γ, or a decaying schedule) on "
         "one model (its cell, attention and source order), trained on the same batches and initial weights as the "
         "other arms, so only what the arms name differs. Each arm has one colour on every page: when the arms "
         "differ only by teacher forcing, from γ = 0 blue to γ = 1 red (each schedule its own colour); when they "
         "differ by model too, a distinct colour per arm."),
    Term("Coin",
         "The random draw that decides whether a decoder step is fed the true token (probability γ) or its own "
         "prediction: once per step for the whole batch, or once per token."),
    Term("FR and TF",
         "Short for free-running (fed its own predictions) and teacher-forced (fed the true previous tokens): "
         "the two ways every model is scored on the same validation examples."),
    Term("Confidence interval",
         "A 95% confidence interval over seeds: the range where the mean over all possible seeds would likely "
         "be. A share's interval is kept within 0-100%. Two arms whose intervals overlap a lot may differ only "
         "by seed noise."),
    Term("Paired test",
         "Compares two arms seed by seed (the same seed gives both the same initial weights and batches), so "
         "the seed's own luck cancels out; a t-test on the per-seed differences."),
    Term("p-value",
         "How rare a difference at least this large would be if the two arms were equally good. p < 0.05: rare "
         "enough to call the difference more than seed noise; p ≥ 0.05: within seed noise."),
    Term("Transformer",
         "An encoder-decoder with no recurrence (Vaswani et al. 2017): every position of a sequence is a vector of "
         "width d that layers of **self-attention** and a feed-forward network refine, all positions at once. The "
         "decoder adds **cross-attention** to the encoder's output (the memory). Order comes only from the "
         "**positional encoding**. Here `hidden_dim` is d, `num_layers` the layers per side."),
    Term("Self-attention",
         "Every position looks at every position of its own sequence: its query q is compared with every key k, "
         "the softmax of the scores weighs the values v, and the weighted sum is the position's new information. "
         "q, k, v are three linear maps of the same vectors. The heatmap shows one row per query position.",
         r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_h}}\right) V"),
    Term("Cross-attention",
         "The decoder's queries against the encoder's keys and values: at every output step the decoder weighs "
         "every source position, as the recurrent model's attention does, but in every layer and head. Source "
         "padding is masked out. For reverse, a trained model's rows form an anti-diagonal."),
    Term("Head",
         "Attention split into h parallel parts, each with its own d/h-wide queries, keys and values, whose "
         "outputs are concatenated and mixed by W_out. One head may follow position while another follows content; "
         "the Hidden states page shows each head's map."),
    Term("Positional encoding",
         "Attention by itself ignores order (shuffle the inputs and each output only moves with them), so each "
         "token's embedding (scaled by √d) gets a vector for its position. Sinusoidal: fixed waves of every "
         "frequency, defined at any length. Learned: one trained vector per position, so positions never seen in "
         "training stay untrained. None: the model cannot tell order except through the causal mask.",
         r"P(p)_{2i} = \sin\!\left(p / 10000^{2i/d}\right), \quad P(p)_{2i+1} = \cos\!\left(p / 10000^{2i/d}\right)"),
    Term("Causal mask",
         "In the decoder's self-attention, step t may look only at steps up to t: the scores of later positions "
         "are set to -∞ before the softmax. So under teacher forcing every step trains in one pass without seeing "
         "the answer, and a step's output is the same whether computed in that pass or one step at a time (the "
         "key/value cache keeps the earlier steps' keys and values)."),
    Term("Residual stream",
         "A Transformer position's vector, to which every sub-layer adds its output (x = x + sublayer(norm(x))): "
         "the embedding at the bottom, the output layer's input at the top. The Hidden states page draws it after "
         "each layer, as it draws an LSTM's h_t."),
    Term("Layer norm",
         "Rescales one position's vector to mean 0 and variance 1, then by a learned gain and bias. Here it comes "
         "before each sub-layer (pre-norm) and once more at the top of each stack, which keeps deep residual "
         "streams trainable.",
         r"\mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta"),
)}


def anchor(title: str) -> str:
    """The Glossary page's anchor of a term (its section id)."""
    return title.lower().replace(" ", "-")


def term_link(key: str, words: str | None = None) -> str:
    """Markdown that links `words` (the term's title by default) to its Glossary entry, for a page's first use."""
    term = TERMS[key]
    return f"[{words or term.title.lower()}](glossary#{anchor(term.title)})"
