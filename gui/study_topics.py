"""The syllabus in the app's own words: one entry per topic, equations as rich text, and the view that shows it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    key: str
    title: str
    html: str
    view: str  # "landscape" or "mnist"
    preset_topic: str = ""  # presets whose topic matches are offered by the "Show me" button


def eq(text: str) -> str:
    return f'<p align="center" style="font-family: serif; font-size: 13pt"><i>{text}</i></p>'


TOPICS: tuple[Topic, ...] = (
    Topic("gd", "Gradient descent", "Each step moves against the gradient of the loss over <b>all</b> the data:"
          + eq("x<sub>t+1</sub> = x<sub>t</sub> &minus; &eta; &nabla;f(x<sub>t</sub>)")
          + "Too small an &eta; crawls; too large oscillates across a valley and, beyond 2/L (L the largest "
          "curvature), diverges. On a ravine the step that suits the steep direction is far too small for "
          "the flat one.", "landscape", "gd_vs_sgd"),
    Topic("sgd", "Stochastic gradient descent", "The gradient of a <b>mini-batch</b> is an unbiased but noisy "
          "estimate of the full gradient:" + eq("x<sub>t+1</sub> = x<sub>t</sub> &minus; &eta; g&#771;<sub>t</sub>,"
          "&nbsp; E[g&#771;<sub>t</sub>] = &nabla;f(x<sub>t</sub>)") + "Noise shrinks as the batch grows "
          "(variance &prop; 1/B). Near the minimum the iterates keep jittering unless &eta; decays.",
          "landscape", "gd_vs_sgd"),
    Topic("momentum", "Momentum and Nesterov", "A velocity accumulates past gradients (torch's form):"
          + eq("b<sub>t</sub> = &mu; b<sub>t&minus;1</sub> + g<sub>t</sub>, &nbsp; x<sub>t+1</sub> = "
               "x<sub>t</sub> &minus; &eta; b<sub>t</sub>")
          + "Oscillations across a ravine cancel while the steady component along it builds up (up to "
          "1/(1&minus;&mu;) times). Nesterov evaluates the gradient at the look-ahead point and damps overshoot.",
          "landscape", "momentum"),
    Topic("adagrad", "Adagrad", "Each coordinate is scaled by the root of its summed squared gradients:"
          + eq("G<sub>t</sub> = G<sub>t&minus;1</sub> + g<sub>t</sub><sup>2</sup>, &nbsp; x<sub>t+1</sub> = "
               "x<sub>t</sub> &minus; &eta; g<sub>t</sub> / (&radic;G<sub>t</sub> + &epsilon;)")
          + "G only grows, so the effective step only shrinks: good for sparse features, fatal for long runs.",
          "landscape", "adaptive"),
    Topic("rmsprop", "RMSprop", "Like Adagrad, but with a running <b>average</b> that forgets:"
          + eq("v<sub>t</sub> = &alpha; v<sub>t&minus;1</sub> + (1&minus;&alpha;) g<sub>t</sub><sup>2</sup>, "
               "&nbsp; x<sub>t+1</sub> = x<sub>t</sub> &minus; &eta; g<sub>t</sub> / (&radic;v<sub>t</sub> + &epsilon;)")
          + "The effective step recovers when gradients get small again.", "landscape", "adaptive"),
    Topic("adam", "Adam", "Momentum on the gradient plus RMSprop scaling, both bias-corrected:"
          + eq("m<sub>t</sub> = &beta;<sub>1</sub>m<sub>t&minus;1</sub> + (1&minus;&beta;<sub>1</sub>)g<sub>t</sub>, "
               "&nbsp; v<sub>t</sub> = &beta;<sub>2</sub>v<sub>t&minus;1</sub> + (1&minus;&beta;<sub>2</sub>)"
               "g<sub>t</sub><sup>2</sup>")
          + eq("x<sub>t+1</sub> = x<sub>t</sub> &minus; &eta; m&#770;<sub>t</sub> / (&radic;v&#770;<sub>t</sub> + "
               "&epsilon;), &nbsp; m&#770;<sub>t</sub> = m<sub>t</sub>/(1&minus;&beta;<sub>1</sub><sup>t</sup>)")
          + "Steps are roughly &eta; in size whatever the gradient's scale.", "landscape", "rosenbrock"),
    Topic("weight_decay", "Coupled vs decoupled weight decay", "<b>Adam + L2</b> adds &lambda;x to the gradient, "
          "so the decay is divided by &radic;v&#770; like everything else: weights with large gradients are "
          "barely decayed. <b>AdamW</b> shrinks the weights directly:"
          + eq("x &larr; x &minus; &eta;&lambda;x &nbsp;(AdamW) &nbsp; vs &nbsp; g &larr; g + &lambda;x &nbsp;(Adam + L2)")
          + "One step from x = 1 on (x&minus;1)<sup>2</sup> with &eta; = 0.1, &lambda; = 10<sup>&minus;4</sup>: "
          "Adam + L2 lands at 0.900010 (the tiny decay gradient is normalised to a full step), AdamW at 0.99999.",
          "landscape", "weight_decay"),
    Topic("advice", "Practical advice", "Tune the learning rate before switching optimiser: most 'optimiser A "
          "beats B' results are one of them run at a poor rate. Start from a learning-rate range test, use "
          "warmup for adaptive methods and large batches, decay the rate at the end, and watch the gradient "
          "norm and the update-to-weight ratio (about 10<sup>&minus;3</sup> per step is healthy).",
          "mnist", "tune_lr"),
    Topic("convergence", "Convergence", "A run <b>converges</b> when the gradient norm (or the loss change) stays "
          "under a tolerance; it <b>diverges</b> when values become non-finite or explode; it <b>oscillates</b> "
          "when the update flips direction along an axis; it <b>stalls</b> on plateaus and saddles where the "
          "gradient is small but no minimum is near. On a quadratic, GD converges for &eta; &lt; 2/L.",
          "landscape", "learning_rate"),
    Topic("schedules", "Learning-rate schedules", "Step: &eta;&gamma;<sup>&lfloor;t/s&rfloor;</sup>. "
          "Exponential: &eta;&gamma;<sup>t</sup>. Cosine: &eta;<sub>min</sub> + (&eta;&minus;&eta;<sub>min</sub>)"
          "(1+cos(&pi;t/T))/2. Cyclical rates sweep between two bounds; one-cycle rises then anneals. "
          "Reduce-on-plateau cuts the rate by a factor after <i>patience</i> evaluations without improvement.",
          "landscape", "schedules"),
    Topic("warmup", "Warmup + decay", "A linear warmup raises the rate from a fraction f of &eta; over W steps:"
          + eq("&eta;<sub>t</sub> = &eta;(f + (1&minus;f) t/W), &nbsp; t &lt; W")
          + "then any decay takes over. Early Adam steps use poor variance estimates; warmup keeps them small.",
          "mnist", "schedules"),
    Topic("diagnostics", "Diagnostics", "Watch the training loss per step, the gradient norm (exploding: growing "
          "by orders of magnitude; vanishing: early layers' norms near zero), the update-to-weight ratio per "
          "layer, and the generalisation gap (validation minus training loss). Validation loss rising while "
          "training loss falls is overfitting.", "mnist", "mnist"),
    Topic("dropout", "Dropout", "Training zeroes each hidden unit with probability p (and scales the rest by "
          "1/(1&minus;p)); evaluation uses the whole network. The training loss with dropout on sits above the "
          "same network's loss in eval mode: that gap is the regulariser at work.", "mnist", "dropout"),
    Topic("early_stopping", "Early stopping", "Evaluate on held-out data; stop after <i>patience</i> evaluations "
          "without a better validation loss and restore the weights of the best one. The stop comes exactly "
          "patience evaluations after the best.", "mnist", "early_stopping"),
    Topic("l2", "Weight decay", "Penalising &lambda;&#8214;w&#8214;<sup>2</sup>/2 pulls weights toward zero; with "
          "SGD it equals shrinking w by &eta;&lambda; each step. The weight-norm curves show the pull; with Adam "
          "only the decoupled form (AdamW) keeps that meaning.", "mnist", "weight_decay"),
    Topic("label_smoothing", "Label smoothing", "The target puts 1&minus;s+s/K on the true class and s/K on each "
          "other. The loss cannot fall below the target's entropy:"
          + eq("H = &minus;(1&minus;s+s/K)ln(1&minus;s+s/K) &minus; (K&minus;1)(s/K)ln(s/K)")
          + "For K = 10, s = 0.1 that floor is 0.5003. Predictions become less over-confident.",
          "mnist", "label_smoothing"),
)
