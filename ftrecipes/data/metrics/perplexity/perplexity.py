"""Perplexity from summed negative log-likelihoods and token counts.

A local ``evaluate`` module shipped inside ftrecipes so that ``evaluate.load(<this folder>)`` works
with no network. Unlike the Hub "perplexity" metric it does not run a model: it aggregates the
losses a model already produced, so it is exact however the tokens are batched.
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Each input row is one sequence (or batch) with the sum of its token negative log-likelihoods
(natural log) and the number of tokens scored. Perplexity is the exponential of the mean NLL per
token over everything added:
    perplexity = exp( sum(nll_sums) / sum(token_counts) )
To turn a mean loss into perplexity, pass nll_sums=[mean_loss] and token_counts=[1].
"""

_KWARGS_DESCRIPTION = """
Args:
    nll_sums (`list` of `float`): summed token NLL (nats) per row.
    token_counts (`list` of `int`): scored tokens per row.
Returns:
    perplexity (float), mean_nll (float, nats per token), num_tokens (int).
Examples:
    >>> metric.compute(nll_sums=[2.0, 4.0], token_counts=[2, 4])["perplexity"]  # exp(1)
    2.718281828459045
"""

_CITATION = """
@book{jurafsky-martin-slp3,
  title={Speech and Language Processing (3rd ed. draft)}, chapter={3: N-gram Language Models},
  author={Jurafsky, Daniel and Martin, James H.}, year={2024}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"nll_sums": datasets.Value("float64"), "token_counts": datasets.Value("int64")}
            ),
            reference_urls=["https://huggingface.co/docs/transformers/perplexity"],
        )

    def _compute(self, nll_sums, token_counts):
        total_nll = float(np.sum(np.asarray(nll_sums, dtype=np.float64)))
        total_tokens = int(np.sum(np.asarray(token_counts, dtype=np.int64)))
        if total_tokens <= 0:
            raise ValueError("perplexity needs at least one scored token (token_counts sum to 0)")
        mean_nll = total_nll / total_tokens
        # exp overflows past ~709 nats; an untrained model can get there, so report inf, not an error.
        perplexity = math.exp(mean_nll) if mean_nll < 709 else float("inf")
        return {"perplexity": perplexity, "mean_nll": mean_nll, "num_tokens": total_tokens}
