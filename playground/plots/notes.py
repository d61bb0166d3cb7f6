"""What every chart shows, for its "What am I looking at?": the axes, the colours, a good and a bad picture.

Written for a student who knows what a neural network is but not a seq2seq model; the Glossary page explains
the words. `ui.runs.chart` draws no chart without one of these.
"""

from __future__ import annotations

from playground.reports.comparison_table import GAP, LENGTHS
from playground.training.metrics import Metric

DIAGRAM = (
    "**Boxes**: the model these settings build, top to bottom: the source tokens, the encoder's embedding and LSTM "
    "layers, their final state (h_T, c_T), which is all the decoder learns of the source, then the decoder's own "
    "embedding and LSTM layers, a Linear layer and a softmax over the target vocabulary. Each box gives its sizes "
    "and parameter count.\n\n"
    "**The diamond**: teacher forcing. At each decoder step a coin with chance γ decides whether the input is the "
    "true previous token or the model's own previous prediction (its argmax), fed back from the softmax.")

LOSS = (
    "**Axes**: training step against cross-entropy in nats per target token (lower is better).\n\n"
    "**Lines**: blue, the training loss of each batch (smoothed by the slider above); dark grey, the validation "
    "loss, dotted when the decoder is fed the true previous tokens (teacher-forced) and solid when it is fed its "
    "own predictions (free-running), as on every page. The dashed grey line is a random model's loss, ln |V|; dotted "
    "vertical lines mark settings moved while it trained.\n\n"
    "**Good**: all three fall well below the dashed line and the solid grey line stays close to the dotted one.\n\n"
    "**Bad**: flat at the dashed line (not learning: raise the learning rate or train longer); jagged or rising "
    "(the learning rate is too high); solid grey far above dotted grey (exposure bias: the model cannot recover "
    "from its own mistakes).")

GAMMA = (
    "**Axes**: training step against γ, the chance that a decoder step reads the true previous token rather than "
    "its own prediction.\n\n"
    "**Line**: flat for a constant ratio, falling for a decaying schedule (scheduled sampling); markers where γ was "
    "moved while training.\n\n"
    "It shows what the model was fed, not how well it learned: read it beside the loss and accuracy (does "
    "free-running accuracy keep up as γ falls?).")

ACCURACY = (
    "**Axes**: training step against the share right, in %, of validation examples (never trained on).\n\n"
    "**Lines**: dark grey, tokens right, dotted when fed the true previous tokens (teacher-forced) and solid when "
    "fed its own predictions (free-running), as on every page; brown, whole sequences right (exact match, the same "
    "both ways under greedy decoding). The dashed grey line is chance, 1/|V|.\n\n"
    "**Good**: all rise towards 100% and the solid grey line stays close to the dotted one.\n\n"
    "**Bad**: solid grey well under dotted grey (exposure bias); exact match far below token accuracy (most "
    "sequences have one wrong token somewhere, common on long sequences); flat near chance (not learning yet).")

STATES = (
    "**Axes**: one column per time step (the token read; for the decoder, input → prediction), one row per hidden "
    "unit.\n\n"
    "**Colour**: for h, c and the candidate g, the unit's value on a diverging scale, red positive, blue negative, "
    "white zero (h and g lie between -1 and 1; the cell state c is unbounded); for the gates i, f and o, which lie "
    "between 0 (closed) and 1 (open), white to dark blue. The unit numbers are on the vertical axis (sorted when a "
    "unit order is chosen). Outlined rows, where shown, are the most informative units, also the lines followed "
    "below by default.\n\n"
    "**Good**: structure along the rows: units that grow or shrink step by step (they count, or track the "
    "position) and units that switch at one token (they react to it).\n\n"
    "**Bad**: every column alike, or noise without a pattern: the model has not learned much yet.")

HEADS = (
    "**Axes**: one map per layer (rows of maps) and head (columns). In each map a row is a query position and a "
    "column a key position, labelled \"position: token\". Encoder self-attention: source against source. Decoder "
    "self-attention: output step against the steps so far (causal: nothing right of the diagonal). "
    "Cross-attention: output step against the source.\n\n"
    "**Colours**: the attention weight, white (0) to dark green (1); a row sums to 1.\n\n"
    "**Good**: sharp rows along the task's path in the last layer's cross-attention (the anti-diagonal for "
    "reverse), heads that differ (one by position, one by content).\n\n"
    "**Bad**: flat rows in every head: the model has not learnt where to look yet.")

ALIGNMENT = (
    "**Axes**: each row is one output step of the decoder (the token it was fed → the token it predicted); each "
    "column is one position of the source, labelled with its token. Only runs with attention have this chart.\n\n"
    "**Colours**: α, the attention weight, from white (0) to dark green (1). A row sums to 1: it says where in the "
    "source the decoder looked when it made that prediction (the context vector ctx_t is the weighted sum of "
    "the encoder's outputs at those positions). Padding gets no weight.\n\n"
    "**Good**: one dark cell per row, along the path the task needs: the anti-diagonal for reverse (the first output "
    "reads the last source token), the diagonal for copy. During training the rows sharpen from flat to peaked.\n\n"
    "**Bad**: flat rows (pale everywhere) mean the model has not learnt where to look yet, or relies on the final "
    "state alone; dark cells off the task's path go with wrong predictions.")

ATTENTION_ROW = (
    "**Bars**: one per source position, labelled position: token, in the order the source was typed. Each bar is α, "
    "the share of attention this decoder step gives that position (they sum to 1); darker green is more. The "
    "decoder reads their weighted sum of the encoder's outputs (the context vector ctx_t) before it predicts.\n\n"
    "**Good**: one tall bar on the token this step must produce next (for reverse: the source's last tokens first, "
    "moving left one position a step).\n\n"
    "**Bad**: bars of equal height (it does not know where to look) or a tall bar on the wrong token, which usually "
    "goes with a wrong prediction.")

UNIT_LINES = (
    "**Axes**: time step (the token read) against the value of each chosen unit (the sidebar picks them).\n\n"
    "**Good**: a unit that rises or falls steadily along the sequence tracks the position; one that jumps at the "
    "same token each time detects that token.\n\n"
    "**Bad**: lines that wander with no relation to the tokens: pick other units (the outlined rows of the "
    "heatmaps).")

PROBABILITIES = (
    "**Axes**: decoder step (input → prediction) against every token of the target vocabulary; the colour is the "
    "probability the model gives that token (dark: near 1).\n\n"
    "**Marks**: crosses are the tokens chosen (argmax). Free-running: fed its own predictions; teacher-forced: fed "
    "the true previous token. The dashed line marks the first step where the two choose differently.\n\n"
    "**Good**: one dark cell per column, on the right token, the same in both charts.\n\n"
    "**Bad**: pale, spread columns (the model is unsure); the two parting early: one wrong token fed back makes "
    "the next steps drift (exposure bias).")

PLANE = (
    "**Axes**: the two directions along which the encoder's final states (h_T, the state the decoder starts "
    "from) of validation examples vary most (PCA); the percentages say how much of the variation each "
    "holds.\n\n"
    "**Colour**: a property of each example (the sidebar picks it, for example the source length). The paths are "
    "this example's decoder states step by step, free-running and teacher-forced.\n\n"
    "**Good**: the colours in order along a direction (the final state encodes that property), and a decoder "
    "path that moves steadily through them.\n\n"
    "**Bad**: colours mixed at random: the encoder has not organised its states around that property (yet).")

RECOVERY = (
    "**The probe**: each validation example is decoded after its true first k tokens, then one wrong token at "
    "position k (the model's likeliest wrong one, so its own mistake where it makes one), then the model goes on "
    "alone, greedily.\n\n"
    "**Axes**: the position k of the wrong token against a share.\n\n"
    "**Lines**: solid, the share of examples whose every later token was still right (it recovered); dotted, the "
    "total-variation distance between the next-token distributions after the true and after the wrong token (0: "
    "the wrong token changed nothing, 1: a different prediction altogether). One colour per arm, as on every page "
    "(dark grey for one model); with several seeds, the line is their mean and the band their range.\n\n"
    "**Good**: solid high, dotted low: one slip is forgotten.\n\n"
    "**Bad**: solid near 0: one wrong token derails the rest of the output (errors compound: exposure bias). "
    "Near the end there are few later tokens to get wrong, so recovery rises there for every model.")

PREFIX_ERRORS = (
    "**Axes**: the position k against the share of the tokens from k to the end that are wrong.\n\n"
    "**Lines**: dotted, greedy decoding from k after the true prefix (the first k target tokens fed in); solid, "
    "free-running from the start, after the model's own first k outputs. One colour per arm.\n\n"
    "**Good**: solid on dotted: the model's own earlier outputs cost it nothing.\n\n"
    "**Bad**: solid above dotted, more so further along: its own earlier mistakes cause later ones.")

DRIFT = (
    "**Axes**: the output position t against the mean Euclidean distance between the decoder's top-layer h_t when "
    "it is fed the true tokens (teacher-forced) and when it is fed its own (free-running), on the same validation "
    "examples. The title gives the size of an h_t for scale.\n\n"
    "**Lines**: one colour per arm (band: the seeds' range). Both runs start from the same state and read the "
    "same tokens until the model's first mistake, so the distance is 0 until then.\n\n"
    "**Good**: flat near 0.\n\n"
    "**Bad**: rising along the output: free running carries the decoder into states training never visited "
    "(Lamb et al. 2016, Professor Forcing).")

DRIFT_PLANE = (
    "**Axes**: the two directions along which the decoder's top-layer states h_t of validation examples vary most "
    "(PCA of both clouds together); the percentages say how much of the variation each holds.\n\n"
    "**Colour**: red, h_t teacher-forced; blue, free-running (hover: the output position).\n\n"
    "**Good**: the blue points lie on the red ones: free running visits the states training shaped.\n\n"
    "**Bad**: blue points where there is no red: after its own mistakes the decoder runs in states it never saw "
    "in training.")

TOP_K = (
    "**Bars**: the k most probable next tokens at this step and their probabilities (0 to 1). Orange is the token "
    "chosen (the argmax); a green outline marks the target's token at this step.\n\n"
    "**Good**: one long orange bar with the green outline: sure, and right.\n\n"
    "**Bad**: short bars of similar length (unsure), or orange without the outline: a wrong choice, which "
    "free-running decoding feeds back as the next input.")

POSITIONS = (
    "**Axes**: position in the output (0 is the first target token, the last is <eos>) against the share of "
    "validation examples wrong at that position.\n\n"
    "**Lines**: the line style says the quantity: dotted, teacher-forced (fed the true prefix); solid, "
    "free-running (fed its own outputs); dashed, free-running among the examples whose earlier positions were all "
    "right. The colour is the arm (γ = 0 blue to γ = 1 red, schedules their own, as on every page); with several "
    "seeds the line is their mean and the band their range. The axis ends just above the largest error.\n\n"
    "**Good**: all three low and close together.\n\n"
    "**Bad**: solid climbing above dotted along the output while dashed stays near dotted: the extra errors come from "
    "earlier mistakes fed back, errors that compound (exposure bias).")

RATIOS = (
    "**Axes**: the teacher-forcing ratio γ of each constant-γ arm against, on the left, its final gap (teacher-forced "
    "minus free-running token accuracy) and, on the right, its final free-running exact match. One line per model; "
    "with several seeds the band is the 95% interval over seeds, cut to what a share can be.\n\n"
    "**Exposure bias** shows as a gap that widens as γ rises; the right panel says whether the wider gap also costs "
    "whole sequences. Schedules are left out: they have no single γ.")


STUDY = (
    "**Axes**: one group per condition (task, setting, hidden size) against free-running exact match on validation, "
    "in %. A marker is one arm's mean over its seeds; its bar is the 95% confidence interval.\n\n"
    "**Colours**: one per teacher-forcing arm, as in the legend.\n\n"
    "**Reading**: bars that overlap a lot may differ by seed noise only; the paired tests below compare arms seed "
    "by seed, which is sharper than the bars.\n\n"
    "**Bad**: very wide bars: too few seeds or steps to tell the arms apart.")

_ARMS = (" One colour per teacher-forcing arm, the same on every page (γ = 0 blue to γ = 1 red, a schedule its "
         "own colour; the legend); with several seeds the band is ± one standard "
         "deviation. Every arm reads the same batches from the same initial weights: the differences come from "
         "teacher forcing alone.")

ARM_CHARTS = {  # the Compare page's and the lessons' charts, by the name the lessons use
    Metric.TRAIN_LOSS: (
        "**Axes**: training step against each model's training loss (cross-entropy, nats per token)." + _ARMS
        + "\n\nEach model is scored under its own γ: a high-γ model is graded on the easier, teacher-forced task, "
        "so a lower curve here does not mean it decodes better on its own (see the free-running charts)."),
    Metric.FR_EXACT: (
        "**Axes**: training step against the share of validation sequences decoded fully right on the model's own "
        "(greedy, no help): what it can really do at test time." + _ARMS
        + "\n\n**Good**: curves rising to 100%. The first to rise learned fastest; the highest at the end decodes "
        "best."),
    Metric.TF_LOSS: (
        "**Axes**: training step against the validation loss when every step is fed the true previous token "
        "(γ = 1); lower is better." + _ARMS
        + "\n\nSet beside the free-running loss: the distance between the two is what reading its own predictions "
        "costs each arm."),
    Metric.FR_LOSS: (
        "**Axes**: training step against the validation loss when every step is fed the model's own previous "
        "prediction (greedy, γ = 0); lower is better." + _ARMS
        + "\n\n**Bad**: an arm whose free-running loss stays far above its teacher-forced loss never learned to "
        "recover from its own mistakes (exposure bias)."),
    GAP: (
        "**Axes**: training step against the exposure-bias gap: teacher-forced minus free-running token accuracy "
        "on validation, in points." + _ARMS
        + "\n\n**Good**: near 0, the model does as well on its own as when helped. **Bad**: high, the arm relies "
        "on being fed the truth. The gap often peaks while a model is half-trained, then closes as its own "
        "predictions become the true tokens.\n\n**Below 0** (free-running better than helped) happens early, "
        "at step 0 above all: an untrained model is near chance either way, and its own repeated guesses can "
        "happen to match more target tokens than its guesses from the true ones. Read the gap once the "
        "teacher-forced accuracy is well above chance."),
    Metric.TF_TOKEN_ACC: (
        "**Axes**: training step against validation token accuracy when every step is fed the true previous token: "
        "how well each arm learned the task with help." + _ARMS),
    Metric.FR_TOKEN_ACC: (
        "**Axes**: training step against validation token accuracy when every step is fed the model's own "
        "prediction: how well each arm does alone." + _ARMS
        + "\n\nSet beside the teacher-forced accuracy: the difference is the exposure-bias gap."),
    Metric.GAMMA: (
        "**Axes**: training step against γ, each arm's chance of reading the true previous token." + _ARMS
        + "\n\nConstant arms are flat; decaying schedules fall from 1 towards 0 (scheduled sampling)."),
    LENGTHS: (
        "**Axes**: the source's length (for the number tasks, its digits) against the share of validation "
        "sequences of that length decoded fully right, free-running, at the latest evaluation. The grey band is the "
        "lengths training drew; lengths to its right (the setting *Test lengths up to*) the model never saw."
        + _ARMS
        + "\n\n**Good**: flat near 100%, also past the band. **Bad**: falling with length: a long output gives a "
        "mistake more chances and more steps to compound, and the encoder's final state must hold more (the "
        "bottleneck); a cliff just past the band means it learned the training lengths, not the task (Newman et "
        "al. 2020)."),
}
