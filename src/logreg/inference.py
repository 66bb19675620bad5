"""Statistical inference for a fitted logistic regression, as statsmodels' `Logit` reports it: standard errors, z,
p-values, confidence intervals and odds ratios per coefficient, and the likelihood-ratio test, AIC, BIC and McFadden's
pseudo R2 for the model.

numpy and torch only: scipy is not a dependency of the project (README.md), so the normal quantile and the chi-square
survival function come from `torch.special` in float64, and the normal tail from `math.erfc`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from logreg.errors import ConfigError, DataError
from logreg.schema import COV_TYPES

INTERCEPT = "(intercept)"  # the name report.py gives the bias; it comes last, after the features
# The information matrix is inverted after scaling it to a unit diagonal (so a feature's units do not matter). Past a
# condition number of 1e10 the inverse keeps fewer than 6 of float64's 16 digits, and a feature is then, to that
# precision, a combination of the others (or of the intercept): such standard errors are not reported.
MAX_CONDITION = 1e10
# A feature whose centered, unit-norm column lies within this distance of the span of the columns before it (the
# intercept first) is a linear combination of them: 1e-5 = 1 / sqrt(MAX_CONDITION), so a dependency that CSV rounding
# blurs (x9 = x1 + x2 to 6 digits) is still found, as the information's conditioning would find it.
DEPENDENT = 1 / math.sqrt(MAX_CONDITION)
# A row whose fitted probability is within 3.4e-4 of its label (margin y~ . logit > 8) counts as predicted with
# certainty when looking for quasi-separation (see `_quasi_separation`).
SATURATED_MARGIN = 8.0


@dataclass(frozen=True)
class Coefficient:
    """One coefficient (a feature's weight, or the intercept) with its uncertainty; NaN where not valid."""

    name: str
    estimate: float
    std_error: float
    z: float
    p_value: float  # two-sided, normal
    ci_low: float
    ci_high: float
    odds_ratio: float  # exp(estimate): the factor on the odds per unit of the feature as given
    odds_ratio_low: float  # exp(ci_low)
    odds_ratio_high: float  # exp(ci_high)
    # The average marginal effect: the mean over the rows of d p / d x_j = coefficient * mean p (1 - p), with its
    # delta-method standard error (statsmodels' get_margeff(at="overall", method="dydx")); NaN for the intercept.
    marginal_effect: float = math.nan
    marginal_effect_std_error: float = math.nan


@dataclass(frozen=True)
class Inference:
    """What `infer` finds. The model-level numbers describe the coefficients given, valid or not."""

    coefficients: list[Coefficient]  # the F features in order, then INTERCEPT
    n_rows: int
    log_likelihood: float  # sum over rows (statsmodels' llf)
    null_log_likelihood: float  # of the intercept-only model at its optimum (llnull)
    lr_statistic: float  # 2 (llf - llnull) (llr)
    lr_df: int  # rank of [X, 1] minus 1: F unless the features are collinear (df_model)
    lr_p_value: float  # chi-square survival of lr_statistic on lr_df degrees of freedom (llr_pvalue)
    aic: float
    bic: float
    pseudo_r2: float  # McFadden's: 1 - llf / llnull (prsquared)
    gradient_norm: float  # max |d mean log-loss / d theta| at the coefficients given
    valid: bool  # False: standard errors, z, p-values and intervals are NaN, and `reason` says why
    reason: str  # "" when valid, else one sentence
    unidentified: list[str] = field(default_factory=list)  # columns in a linear dependency: no standard errors
    note: str = ""  # "" or one sentence on what `unidentified` holds and why
    # (F+1, F+1) the coefficients' covariance as `cov_type` gives it, features then the intercept (zero rows and
    # columns for unidentified ones); None when not valid. What prediction intervals take (logreg.intervals).
    covariance: np.ndarray | None = None

    def rows(self) -> list[dict]:
        """One flat dict per coefficient (features, then the intercept), for a CSV."""
        return [
            {
                "feature": c.name,
                "coefficient": c.estimate,
                "std_error": c.std_error,
                "z": c.z,
                "p_value": c.p_value,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "odds_ratio": c.odds_ratio,
                "odds_ratio_low": c.odds_ratio_low,
                "odds_ratio_high": c.odds_ratio_high,
                "marginal_effect": c.marginal_effect,
                "marginal_effect_std_error": c.marginal_effect_std_error,
            }
            for c in self.coefficients
        ]

    def summary(self) -> dict[str, float]:
        """The model-level numbers, for metrics.json."""
        return {
            "log_likelihood": self.log_likelihood,
            "null_log_likelihood": self.null_log_likelihood,
            "lr_statistic": self.lr_statistic,
            "lr_df": self.lr_df,
            "lr_p_value": self.lr_p_value,
            "aic": self.aic,
            "bic": self.bic,
            "pseudo_r2": self.pseudo_r2,
            "gradient_norm": self.gradient_norm,
            "n_rows": self.n_rows,
        }


def infer(
    features: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray,
    bias: float,
    names: list[str],
    *,
    weight_decay: float = 0.0,
    pos_weight: float = 1.0,
    tolerance: float = 1e-4,
    level: float = 0.95,
    cov_type: str = "nonrobust",
    clusters: np.ndarray | None = None,
) -> Inference:
    """Standard errors, tests and intervals for p(y=1 | x) = sigmoid(x . weight + bias), as statsmodels' Logit.

    The numbers are those of the maximum-likelihood fit of an unregularized, unweighted logistic regression, so they
    hold only when `weight` and `bias` are that fit. When they are not, `valid` is False, `reason` says why, and the
    standard errors, z, p-values and confidence intervals are NaN:

    - `weight_decay > 0` (a penalized fit) or `pos_weight != 1` (a weighted loss): the coefficients maximize another
      objective, whose uncertainty the plain likelihood's information does not give;
    - the coefficients classify every row correctly: the classes are perfectly separated, and the likelihood has no
      maximum (it keeps growing as the coefficients grow);
    - `gradient_norm > tolerance`: not converged, so not the maximum;
    - the information matrix is singular or ill-conditioned (a constant or collinear feature, or saturated
      probabilities).

    The estimates and their odds ratios, and the model-level numbers (log-likelihoods, LR test, AIC, BIC, pseudo R2,
    gradient norm), are always reported: they describe the coefficients given, and equal statsmodels' at the optimum.

    Args:
        features: (N, F) the rows on which `weight` acts (the raw features, when the model folds its standardization
            into its weights, as `LogisticRegression.folded_weights` does); any float dtype, computed in float64.
        labels: (N,) 0 or 1, both classes present.
        weight: (F,) the coefficients on those features.
        bias: the intercept.
        names: F feature names; the intercept is named INTERCEPT and comes last.
        weight_decay: the fit's L2 penalty; > 0 makes the standard errors invalid.
        pos_weight: the fit's weight on positive rows; != 1 makes the standard errors invalid.
        tolerance: the largest gradient norm (max |d mean log-loss / d theta|) that counts as converged.
        level: the confidence level of the intervals.
        cov_type: the coefficients' covariance: "nonrobust" (the inverse information, valid for the plain
            likelihood) or a sandwich A^-1 M A^-1 with A the (weighted) information and M the outer products of the
            rows' scores s_i = c_i (y_i - p_i) x~_i (c_i = pos_weight on class-1 rows, else 1): "HC0" (M = sum s s'),
            "HC1" (HC0 * N / (N - K)), "HC2" / "HC3" (each s_i divided by (1 - h_i)^(1/2) or (1 - h_i), h_i the
            leverage of the IRLS fit, as R's sandwich::vcovHC), "cluster" (the scores summed within each cluster,
            times G / (G - 1) * (N - 1) / (N - K), statsmodels' CRV1). A sandwich holds for a weighted loss too.
        clusters: (N,) each row's cluster id, for cov_type="cluster".

    Raises:
        DataError: an array of the wrong shape, a value that is not finite, a label other than 0/1, one class only.
        ConfigError: an option out of range.
    """
    x, y, theta = _check_data(features, labels, weight, bias, names)
    _check_options(weight_decay, pos_weight, tolerance, level)
    if cov_type not in COV_TYPES:
        raise ConfigError(f"cov_type={cov_type!r}: expected one of {', '.join(COV_TYPES)}")
    if (cov_type == "cluster") != (clusters is not None):
        raise ConfigError("clusters: expected one cluster id per row with cov_type=cluster, and none otherwise")
    n, f = x.shape
    if clusters is not None and np.shape(clusters) != (n,):
        raise DataError(f"clusters: expected shape ({n},), one per row, got {np.shape(clusters)}")
    design = np.column_stack([x, np.ones(n)])  # (N, F+1): X~ = [X, 1], the intercept last
    logits = design @ theta  # (N,)
    sign = 2 * y - 1  # (N,) +1 for label 1, -1 for label 0
    margins = sign * logits  # (N,) > 0 where a row is classified correctly

    # From the logits, never from probabilities, so a saturated probability costs a large loss, never log(0):
    # log p(y | x) = -softplus(-margin); the residual y - p = sign * sigmoid(-margin) = sign * exp(-softplus(margin)).
    log_likelihood = -float(np.sum(np.logaddexp(0.0, -margins)))
    residuals = sign * np.exp(-np.logaddexp(0.0, margins))  # (N,)
    row_weights = np.where(y == 1, pos_weight, 1.0)  # (N,) c_i: the loss's weight of each row
    # of the fit's objective, the mean (weighted) log-loss: -X~' c (y - p) / N
    gradient_norm = float(np.max(np.abs(design.T @ (row_weights * residuals)))) / n
    variances = np.exp(-np.logaddexp(0.0, logits) - np.logaddexp(0.0, -logits))  # (N,) p (1 - p), no 1 - p rounding

    all_names = [*names, INTERCEPT]
    kept, combinations = _dependencies(x)  # the independent columns of X~ (indices), each dependent one's partners
    involved = sorted({j for dependent, partners in combinations.items() for j in (dependent, *partners)})
    rank = len(kept)  # statsmodels counts parameters by rank: F + 1 unless collinear
    n_positive = float(y.sum())
    n_negative = n - n_positive
    null_log_likelihood = n_positive * math.log(n_positive / n) + n_negative * math.log(n_negative / n)
    lr_statistic = 2 * (log_likelihood - null_log_likelihood)
    lr_df = rank - 1

    robust = cov_type != "nonrobust"
    # The fit's own objective against its intercept-only optimum (the plain likelihood's when pos_weight is 1)
    weighted_positive = pos_weight * n_positive
    share = weighted_positive / (weighted_positive + n_negative)
    weighted_null = weighted_positive * math.log(share) + n_negative * math.log(1 - share)
    gain = -float(np.sum(row_weights * np.logaddexp(0.0, -margins))) - weighted_null
    reason = _invalid_reason(weight_decay, 1.0 if robust else pos_weight, margins, gradient_norm, tolerance, gain)
    if not reason:
        reason = _quasi_separation(design[:, kept], sign, margins, [all_names[j] for j in kept])
    identified = [j for j in kept if j not in involved]  # (k,) the columns whose coefficients are identified
    covariance = None
    if not reason:
        columns = design[:, kept]  # (N, R)
        information = columns.T @ (columns * (row_weights * variances)[:, None])  # (R, R) X~' C W X~
        covariance = _invert(information)
        if covariance is not None and robust:
            scores = columns * (row_weights * residuals)[:, None]  # (N, R) s_i
            covariance = _sandwich(covariance, scores, columns, row_weights * variances, cov_type, clusters)
        if covariance is None:
            reason = (
                "the information matrix is singular (saturated probabilities, or features nearly collinear): the "
                "coefficients are not identified"
            )
    std_errors = np.full(f + 1, math.nan)  # (F+1,)
    padded = np.zeros((f + 1, f + 1))  # (F+1, F+1) the kept columns' covariance, zero elsewhere: a g-inverse
    if covariance is not None:
        padded[np.ix_(kept, kept)] = covariance
        std_errors[identified] = np.sqrt(np.diag(padded)[identified])
    effects, effect_errors = _marginal_effects(design, logits, theta, padded, identified, covariance is not None)
    return _assembled(
        all_names,
        theta,
        std_errors,
        effects,
        effect_errors,
        level=level,
        n=n,
        log_likelihood=log_likelihood,
        null_log_likelihood=null_log_likelihood,
        lr_statistic=lr_statistic,
        lr_df=lr_df,
        rank=rank,
        gradient_norm=gradient_norm,
        reason=reason,
        covariance=padded if covariance is not None else None,
        unidentified=[all_names[j] for j in involved],
        note=_dependency_note(combinations, all_names, rank),
    )


def _assembled(
    names: list[str],
    theta: np.ndarray,
    std_errors: np.ndarray,
    effects: np.ndarray,
    effect_errors: np.ndarray,
    *,
    level: float,
    n: int,
    log_likelihood: float,
    null_log_likelihood: float,
    lr_statistic: float,
    lr_df: int,
    rank: int,
    gradient_norm: float,
    reason: str,
    covariance: np.ndarray | None,
    unidentified: list[str] | None = None,
    note: str = "",
) -> Inference:
    """The Inference of a fit (`infer`'s, or `infer_from_sums`'): each coefficient's test and interval at `level`, and
    the fit's likelihood-ratio test, information criteria and pseudo-R2 (none of those where the fit is worse than the
    intercept-only model)."""
    quantile = normal_quantile(level)
    worse_than_null = log_likelihood < null_log_likelihood
    return Inference(
        coefficients=[
            replace(
                _coefficient(name, float(estimate), float(se), quantile),
                marginal_effect=float(effect),
                marginal_effect_std_error=float(effect_error),
            )
            for name, estimate, se, effect, effect_error in zip(names, theta, std_errors, effects, effect_errors)
        ],
        n_rows=n,
        log_likelihood=log_likelihood,
        null_log_likelihood=null_log_likelihood,
        lr_statistic=math.nan if worse_than_null else lr_statistic,
        lr_df=lr_df,
        lr_p_value=math.nan if worse_than_null else _chi2_survival(lr_statistic, lr_df),
        aic=-2 * log_likelihood + 2 * rank,
        bic=-2 * log_likelihood + rank * math.log(n),
        pseudo_r2=math.nan if worse_than_null else 1 - log_likelihood / null_log_likelihood,
        gradient_norm=gradient_norm,
        valid=not reason,
        reason=reason,
        unidentified=unidentified or [],
        note=note,
        covariance=covariance,
    )


@dataclass
class RowSums:
    """What `infer` needs of the rows, as sums a pass over blocks of rows adds up (`add`): for a table that is never in
    memory whole (`logreg.stream`). `infer_from_sums` turns them into the `Inference` that `infer` would give."""

    theta: np.ndarray  # (F+1,) the coefficients the sums are taken at: the weights, then the intercept
    pos_weight: float = 1.0
    n: int = 0
    n_positive: float = 0.0
    log_likelihood: float = 0.0  # sum log p(y | x)
    weighted_log_likelihood: float = 0.0  # sum c_i log p(y | x)
    min_margin: float = math.inf
    saturated: int = 0  # rows with margin > SATURATED_MARGIN
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) X~' c (y - p)
    information: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (K, K) X~' C W X~
    meat: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (K, K) sum s_i s_i'
    variance_sum: float = 0.0  # sum p (1 - p)
    slope: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) X~' p (1 - p) (1 - 2p)
    gram: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (K, K) X~' X~
    rest_gram: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (K, K) of the rows not saturated

    def __post_init__(self) -> None:
        k = len(self.theta)
        self.score, self.slope = np.zeros(k), np.zeros(k)
        self.information, self.meat, self.gram = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
        self.rest_gram = np.zeros((k, k))

    def add(self, features: np.ndarray, labels: np.ndarray) -> None:
        """Add the rows features (n, F) and labels (n,) 0/1."""
        x, y = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        design = np.column_stack([x, np.ones(len(y))])  # (n, K)
        logits = design @ self.theta
        sign = 2 * y - 1
        margins = sign * logits
        row_weights = np.where(y == 1, self.pos_weight, 1.0)
        log_p = -np.logaddexp(0.0, -margins)
        residuals = sign * np.exp(-np.logaddexp(0.0, margins))
        variances = np.exp(-np.logaddexp(0.0, logits) - np.logaddexp(0.0, -logits))
        probs = np.exp(-np.logaddexp(0.0, -logits))
        scores = row_weights * residuals
        self.n += len(y)
        self.n_positive += float(y.sum())
        self.log_likelihood += float(log_p.sum())
        self.weighted_log_likelihood += float((row_weights * log_p).sum())
        self.min_margin = min(self.min_margin, float(margins.min())) if len(y) else self.min_margin
        self.saturated += int((margins > SATURATED_MARGIN).sum())
        self.score += design.T @ scores
        self.information += design.T @ (design * (row_weights * variances)[:, None])
        self.meat += design.T @ (design * (scores**2)[:, None])
        self.variance_sum += float(variances.sum())
        self.slope += design.T @ (variances * (1 - 2 * probs))
        self.gram += design.T @ design
        rest = design[margins <= SATURATED_MARGIN]
        self.rest_gram += rest.T @ rest


def _dependencies_of_gram(gram: np.ndarray, n: int) -> list[int]:
    """The features (indices) that `_dependencies` would find dependent, from X~' X~ (K, K): the distance of each
    centered, unit-norm column from the span of the kept ones before it, by the Schur complement of their
    correlations (exact for DEPENDENT = 1e-5, whose square float64 resolves)."""
    f = len(gram) - 1
    mean = gram[f, :f] / n
    centered = gram[:f, :f] - n * np.outer(mean, mean)  # (F, F) the centered features' Gram matrix
    norms = np.sqrt(np.clip(np.diag(centered), 0.0, None))
    kept: list[int] = []
    dependent = []
    for j in range(f):
        if norms[j] <= 0:
            dependent.append(j)
            continue
        correlations = centered[np.ix_([*kept, j], [*kept, j])] / np.outer(norms[[*kept, j]], norms[[*kept, j]])
        within = correlations[:-1, :-1]
        across = correlations[:-1, -1]
        squared = 1.0 - (across @ np.linalg.solve(within, across) if kept else 0.0)
        if math.sqrt(max(squared, 0.0)) > DEPENDENT:
            kept.append(j)
        else:
            dependent.append(j)
    return dependent


def _flat_directions(sums: RowSums) -> bool:
    """Whether some direction of the (unit-norm) coefficients leaves every row not predicted with certainty on its
    logit: `_quasi_separation`'s candidates for a proof, from the Gram matrix of those rows (eigenvalues within 1e-12
    of the largest: the singular values within 1e-6, where `_quasi_separation`'s SVD of the rows resolves 1e-8)."""
    scale = np.sqrt(np.diag(sums.gram))
    if not np.all(scale > 0):
        return True
    eigenvalues = np.linalg.eigvalsh(sums.rest_gram / np.outer(scale, scale))
    return bool(eigenvalues[0] <= 1e-12 * max(float(eigenvalues[-1]), 1e-300))


STREAMED_COV_TYPES = ("nonrobust", "HC0", "HC1")  # what `infer_from_sums` gives


def infer_from_sums(
    sums: RowSums,
    names: list[str],
    *,
    weight_decay: float = 0.0,
    tolerance: float = 1e-4,
    level: float = 0.95,
    cov_type: str = "nonrobust",
) -> Inference:
    """`infer`'s result from the rows' sums (`RowSums`), for cov_type nonrobust, HC0 or HC1. Where `infer` would
    name dependent columns, or look for quasi-separation among rows predicted with certainty, this finds the same
    and directions flat on the rows not predicted with certainty (the candidates of a quasi-separation proof), this
    reports no standard errors and says why (it does not identify the other columns, nor seek the proof)."""
    if cov_type not in STREAMED_COV_TYPES:
        raise ConfigError(
            f"inference.cov_type={cov_type}: a streamed table's statistics come from sums over its rows, which give "
            "nonrobust, HC0 and HC1; use one of those, or data.stream=false"
        )
    theta, n, pos_weight = sums.theta, sums.n, sums.pos_weight
    _check_options(weight_decay, pos_weight, tolerance, level)
    if sums.n_positive in (0, n):
        raise DataError(f"labels: all {n} rows are of one class; inference needs rows of both classes")
    f = len(theta) - 1
    all_names = [*names, INTERCEPT]
    dependent = _dependencies_of_gram(sums.gram, n)
    rank = f + 1 - len(dependent)
    n_positive, n_negative = sums.n_positive, n - sums.n_positive
    null_log_likelihood = n_positive * math.log(n_positive / n) + n_negative * math.log(n_negative / n)
    log_likelihood = sums.log_likelihood
    lr_statistic, lr_df = 2 * (log_likelihood - null_log_likelihood), rank - 1
    gradient_norm = float(np.max(np.abs(sums.score))) / n
    robust = cov_type != "nonrobust"
    weighted_positive = pos_weight * n_positive
    share = weighted_positive / (weighted_positive + n_negative)
    weighted_null = weighted_positive * math.log(share) + n_negative * math.log(1 - share)
    gain = sums.weighted_log_likelihood - weighted_null
    margins = np.array([sums.min_margin])  # all margins > 0 exactly when the smallest is
    reason = _invalid_reason(weight_decay, 1.0 if robust else pos_weight, margins, gradient_norm, tolerance, gain)
    if not reason and dependent:
        reason = (
            f"rank-deficient design: {', '.join(all_names[j] for j in dependent)} "
            f"{'is a linear combination' if len(dependent) == 1 else 'are linear combinations'} of the other columns "
            f"(to {DEPENDENT:.0e}); on a streamed table no coefficient then gets standard errors: drop "
            f"{'it' if len(dependent) == 1 else 'them'}"
        )
    if not reason and 0 < sums.saturated < n and _flat_directions(sums):
        reason = (
            f"{sums.saturated} rows are predicted with probability 0 or 1 (margin > {SATURATED_MARGIN:g}) and the "
            "others leave a direction of the coefficients flat: the classes may be quasi-separated, which a streamed "
            "table's sums cannot rule out; no standard errors"
        )
    covariance = None
    if not reason:
        covariance = _invert(sums.information)
        if covariance is not None and robust:
            factor = n / (n - (f + 1)) if cov_type == "HC1" else 1.0
            covariance = covariance @ (sums.meat * factor) @ covariance
        if covariance is None:
            reason = (
                "the information matrix is singular (saturated probabilities, or features nearly collinear): the "
                "coefficients are not identified"
            )
    std_errors = np.sqrt(np.diag(covariance)) if covariance is not None else np.full(f + 1, math.nan)
    mean_variance = sums.variance_sum / n
    effects = theta * mean_variance
    effects[-1] = math.nan
    errors = np.full(f + 1, math.nan)
    if covariance is not None:
        for j in range(f):
            gradient = theta[j] * sums.slope / n
            gradient[j] += mean_variance
            errors[j] = math.sqrt(max(float(gradient @ covariance @ gradient), 0.0))
    return _assembled(
        all_names,
        theta,
        std_errors,
        effects,
        errors,
        level=level,
        n=n,
        log_likelihood=log_likelihood,
        null_log_likelihood=null_log_likelihood,
        lr_statistic=lr_statistic,
        lr_df=lr_df,
        rank=rank,
        gradient_norm=gradient_norm,
        reason=reason,
        covariance=covariance,
    )


def _sandwich(
    bread: np.ndarray,
    scores: np.ndarray,
    columns: np.ndarray,
    weights: np.ndarray,
    cov_type: str,
    clusters: np.ndarray | None,
) -> np.ndarray:
    """A^-1 M A^-1 for `bread` = A^-1 (R, R), the rows' scores (N, R), the design's columns (N, R) and the IRLS
    weights c p (1 - p) (N,) (for the leverages)."""
    n, k = scores.shape
    if cov_type in ("HC2", "HC3"):
        leverage = weights * np.einsum("ij,jk,ik->i", columns, bread, columns)  # (N,) h_i = w_i x_i' A^-1 x_i
        scores = scores / ((1 - leverage) ** (0.5 if cov_type == "HC2" else 1.0))[:, None]
    factor = n / (n - k) if cov_type == "HC1" else 1.0
    if cov_type == "cluster":
        assert clusters is not None
        _, group = np.unique(clusters, return_inverse=True)
        n_groups = int(group.max()) + 1
        summed = np.zeros((n_groups, k))
        np.add.at(summed, group, scores)
        scores = summed  # (G, R)
        factor = n_groups / (n_groups - 1) * (n - 1) / (n - k) if n_groups > 1 else math.nan
    meat = scores.T @ scores * factor  # (R, R)
    return bread @ meat @ bread


def _marginal_effects(
    design: np.ndarray,
    logits: np.ndarray,
    theta: np.ndarray,
    covariance: np.ndarray,
    identified: list[int],
    has_covariance: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Average marginal effects (F+1,) and their delta-method standard errors (F+1,), NaN for the intercept (last)
    and, for the errors, where a coefficient has none.

    AME_j = theta_j m with m = mean_i p_i (1 - p_i), so d AME_j / d theta = m e_j + theta_j X~' (p (1-p) (1-2p)) / N,
    whose quadratic form in the covariance (F+1, F+1) is AME_j's variance."""
    n = len(logits)
    probs = np.exp(-np.logaddexp(0.0, -logits))  # (N,) sigmoid, without overflow
    variances = np.exp(-np.logaddexp(0.0, logits) - np.logaddexp(0.0, -logits))  # (N,) p (1 - p)
    mean_variance = float(variances.mean())
    slope = design.T @ (variances * (1 - 2 * probs)) / n  # (F+1,) d m / d theta
    effects = theta * mean_variance
    effects[-1] = math.nan
    errors = np.full(len(theta), math.nan)
    if has_covariance:
        for j in identified:
            if j == len(theta) - 1:
                continue
            gradient = theta[j] * slope  # (F+1,)
            gradient[j] += mean_variance
            errors[j] = math.sqrt(max(float(gradient @ covariance @ gradient), 0.0))
    return effects, errors


def _dependencies(x: np.ndarray) -> tuple[list[int], dict[int, list[int]]]:
    """Which columns of X~ = [X, 1] (N, F+1) are independent, and how the others depend on them.

    The intercept comes first, then each feature in order: a feature is dependent when its centered column, scaled
    to unit norm, lies within DEPENDENT of the span of the centered independent features before it (a constant
    feature: on the intercept alone). Returns the independent columns' indices into X~ (the intercept, F, included)
    and, for each dependent column, the independent columns it is a combination of (the intercept among them where
    the combination has a constant term).
    """
    n, f = x.shape
    centered = x - x.mean(axis=0)  # (N, F): the intercept projected out
    norms = np.linalg.norm(centered, axis=0)  # (F,)
    kept_features: list[int] = []
    basis = np.zeros((n, 0))  # (N, k) orthonormal basis of the kept centered features
    combinations: dict[int, list[int]] = {}
    for j in range(f):
        column = centered[:, j] / norms[j] if norms[j] > 0 else np.zeros(n)
        residual = column - basis @ (basis.T @ column)
        residual -= basis @ (basis.T @ residual)  # twice: Gram-Schmidt keeps its orthogonality
        distance = float(np.linalg.norm(residual))
        if norms[j] > 0 and distance > DEPENDENT:
            basis = np.column_stack([basis, residual / distance])
            kept_features.append(j)
            continue
        # x_j = sum_k a_k x_k + c: least squares on the kept features' raw columns and the intercept
        columns = np.column_stack([x[:, kept_features], np.ones(n)])  # (N, k+1)
        coefficients = np.linalg.lstsq(columns, x[:, j], rcond=None)[0]  # (k+1,)
        scales = np.linalg.norm(columns, axis=0) / max(float(np.linalg.norm(x[:, j])), 1e-300)  # unit-free sizes
        partners = [k for k, a, s in zip([*kept_features, f], coefficients, scales) if abs(a) * s > DEPENDENT]
        combinations[j] = partners or [f]
    return [*kept_features, f], combinations


def _dependency_note(combinations: dict[int, list[int]], names: list[str], rank: int) -> str:
    """One sentence naming each dependent column and what it is a combination of; "" when there is none."""
    if not combinations:
        return ""
    parts = [
        f"{names[j]} is a linear combination of {', '.join(names[k] for k in partners)}"
        for j, partners in combinations.items()
    ]
    return (
        f"rank-deficient design: {'; '.join(parts)} (to {DEPENDENT:.0e}), so their coefficients are not identified and "
        f"have no standard errors; df, AIC and BIC count the {rank} independent columns; drop "
        f"{', '.join(names[j] for j in combinations)} to estimate the others"
    )


def _quasi_separation(design: np.ndarray, sign: np.ndarray, margins: np.ndarray, names: list[str]) -> str:
    """Why the data are quasi-separated, or "" when no proof of it is found.

    Quasi-separation: a direction d of the coefficients along which some rows move to their own side of the boundary
    and every other row stays on it (y~_i x~_i . d >= 0 for all rows, > 0 for some). Moving along d raises the
    likelihood forever, so there is no maximum: the fit drives those rows' probabilities to 0 or 1 and its
    coefficients grow. The proof is sought LP-free, from the fit: the rows it predicts with certainty (margin >
    SATURATED_MARGIN) are the candidates; any d that leaves every other row's logit unchanged (the null space of
    their design, which must then be rank-deficient) and moves every candidate the same way is such a direction.

    Args:
        design: (N, K) the independent columns of X~ (full column rank); sign: (N,) y~ = 2 y - 1; margins: (N,)
            y~ . logit; names: the K columns' names.
    """
    saturated = margins > SATURATED_MARGIN  # (N,)
    if not saturated.any() or saturated.all():
        return ""
    scale = np.linalg.norm(design, axis=0)  # (K,) unit-norm columns: the test does not depend on units
    scaled = design / scale
    rest = scaled[~saturated]  # (M, K)
    if len(rest) == 0:
        return ""
    _, singular, right = np.linalg.svd(rest, full_matrices=True)
    padded = np.zeros(scaled.shape[1])
    padded[: len(singular)] = singular
    null = right[padded <= 1e-8 * max(float(singular.max()), 1e-300)]  # (D, K) directions flat on the other rows
    sides = sign[saturated]  # (S,) each candidate's own side: +1 for label 1, -1 for label 0
    for direction in null:
        moves = (scaled[saturated] @ direction) * sides  # (S,) how each candidate's margin changes along d
        largest = float(np.abs(moves).max())
        if largest == 0:
            continue
        for oriented in (moves, -moves):
            if oriented.min() >= -1e-8 * largest:
                in_direction = np.abs(direction) >= 1e-3 * np.abs(direction).max()
                involved = ", ".join(name for name, used in zip(names, in_direction) if used)
                count = int((oriented > 1e-8 * largest).sum())
                return (
                    f"quasi-separated classes: along a direction of {involved}, {count} rows predicted with "
                    "probability 0 or 1 move further to their side while every other row stays on the boundary, "
                    "so the likelihood has no maximum and the coefficients grow without bound; standard errors do "
                    "not exist (drop or merge what separates them, or use a penalized fit)"
                )
    return ""


def _invalid_reason(
    weight_decay: float, pos_weight: float, margins: np.ndarray, gradient_norm: float, tolerance: float, gain: float
) -> str:
    """Why the coefficients are not the plain maximum-likelihood fit, or "" when they may be; the first reason found."""
    if weight_decay > 0:
        return (
            f"regularized fit (weight_decay={weight_decay:g}): standard errors of a penalized fit are not valid; "
            "refit with weight_decay=0"
        )
    if pos_weight != 1:
        return (
            f"weighted loss (pos_weight={pos_weight:g}): the fit maximizes a weighted likelihood, so the plain "
            "likelihood's standard errors do not apply; use a sandwich (inference.cov_type=HC0, HC1, HC2, HC3 or "
            "cluster), or refit with pos_weight=1"
        )
    # Checked before convergence: training longer cannot help here. Coefficients that put every row strictly on its
    # side of the boundary prove the data separable, and then scaling them up always raises the likelihood.
    if np.all(margins > 0):
        return (
            "perfectly separated classes: the coefficients classify every row correctly, so the likelihood has no "
            "maximum and the coefficients grow without bound; standard errors do not exist"
        )
    worse = (
        f"; and its log-likelihood is {-gain:.6g} below the intercept-only model's, so there is no likelihood-ratio "
        "test or pseudo-R2 (a diverging fit: e.g. lr too large)"
        if gain < 0
        else ""
    )
    if gradient_norm > tolerance:
        return (
            f"not converged: gradient norm {gradient_norm:.1e} > tolerance {tolerance:.1e}; train to convergence "
            f"(e.g. experiment=optimum / optimizer=newton) for valid standard errors{worse}"
        )
    if gain < 0:  # gain: log-likelihood minus the intercept-only model's; the optimum is never below it
        return (
            f"the fit is worse than the intercept-only model: its log-likelihood is {-gain:.6g} below it, so there is "
            "no likelihood-ratio test, pseudo-R2 or standard errors"
        )
    return ""


def _invert(information: np.ndarray) -> np.ndarray | None:
    """The inverse of the (F+1, F+1) information matrix, or None when it is singular or ill-conditioned."""
    scale = np.sqrt(np.diag(information))  # (F+1,)
    if not np.all(scale > 0):  # a column of zeros, or every p (1 - p) underflowed to 0
        return None
    scaled = information / np.outer(scale, scale)  # unit diagonal: its conditioning does not depend on feature units
    eigenvalues = np.linalg.eigvalsh(scaled)  # ascending; all >= 0 in exact arithmetic
    if not eigenvalues[0] * MAX_CONDITION > eigenvalues[-1]:
        return None
    return np.linalg.inv(scaled) / np.outer(scale, scale)


def _coefficient(name: str, estimate: float, std_error: float, quantile: float) -> Coefficient:
    """A coefficient's z, two-sided normal p-value, interval and odds ratios; NaN std_error gives NaN for all those."""
    z = estimate / std_error
    low, high = estimate - quantile * std_error, estimate + quantile * std_error
    return Coefficient(
        name=name,
        estimate=estimate,
        std_error=std_error,
        z=z,
        p_value=math.erfc(abs(z) / math.sqrt(2)),  # 2 (1 - Phi(|z|)), without 1 - Phi's cancellation for large |z|
        ci_low=low,
        ci_high=high,
        odds_ratio=_exp(estimate),
        odds_ratio_low=_exp(low),
        odds_ratio_high=_exp(high),
    )


def _exp(value: float) -> float:
    """exp, infinite past float64's range (as report.py's odds ratios), NaN for NaN."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def normal_quantile(level: float) -> float:
    """The standard normal quantile for a two-sided interval of `level`: 1.959964 for 0.95."""
    tail = (1 - level) / 2  # the upper tail's probability, exact for levels near 1 where 1 - tail would round
    return -torch.special.ndtri(torch.tensor(tail, dtype=torch.float64)).item()


def _chi2_survival(statistic: float, df: int) -> float:
    """P(chi2_df > statistic) = Q(df / 2, statistic / 2), the regularized upper incomplete gamma function."""
    if df <= 0:  # every feature is collinear with the intercept: nothing to test
        return math.nan
    shape = torch.tensor(df / 2, dtype=torch.float64)
    half_statistic = torch.tensor(max(statistic, 0.0) / 2, dtype=torch.float64)  # below 0 (worse than null): p = 1
    return torch.special.gammaincc(shape, half_statistic).item()


def _check_data(
    features: np.ndarray, labels: np.ndarray, weight: np.ndarray, bias: float, names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """features (N, F), labels (N,) and theta = [weight, bias] (F+1,) in float64, or a DataError naming the value."""
    x = _float64("features", features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"features: expected a 2-D array (rows, features) with at least one of each, got {x.shape}")
    n, f = x.shape
    _check_finite("features", x)
    y = _float64("labels", labels)
    if y.shape != (n,):
        raise DataError(f"labels: expected shape ({n},), one per row of features, got {y.shape}")
    (bad,) = np.nonzero((y != 0) & (y != 1))
    if bad.size:
        raise DataError(f"labels: row {bad[0]} is {float(y[bad[0]])!r}; expected 0 or 1")
    if y.min() == y.max():
        raise DataError(f"labels: all {n} rows are {y[0]:g}; inference needs rows of both classes")
    w = _float64("weight", weight)
    if w.shape != (f,):
        raise DataError(f"weight: expected shape ({f},), one per feature, got {w.shape}")
    _check_finite("weight", w)
    b = _float64("bias", bias)
    if b.size != 1:
        raise DataError(f"bias: expected one number, got shape {b.shape}")
    if not math.isfinite(b.item()):
        raise DataError(f"bias: {b.item()!r}; expected a finite number")
    if len(names) != f:
        raise DataError(f"names: expected {f} feature names, one per column, got {len(names)}: {list(names)!r}")
    return x, y, np.append(w, b)


def _float64(name: str, value: Any) -> np.ndarray:
    """`value` (an array, a tensor, a number) as a float64 array, or a DataError naming the argument."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}: expected numbers, got {type(value).__name__} ({error})") from None


def _check_finite(name: str, array: np.ndarray) -> None:
    """A DataError naming the first NaN or infinite value of a (N, F) or (F,) `array` and where it is."""
    bad = np.argwhere(~np.isfinite(array))  # (count, ndim)
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        place = f"row {where[0]}, column {where[1]}" if array.ndim == 2 else f"entry {where[0]}"
        raise DataError(f"{name}: {place} is {float(array[where])!r}; expected a finite number")


def _check_options(weight_decay: float, pos_weight: float, tolerance: float, level: float) -> None:
    """A ConfigError naming the first option out of range."""
    checks = [
        ("weight_decay", weight_decay, weight_decay >= 0, "a finite number >= 0"),
        ("pos_weight", pos_weight, pos_weight > 0, "a finite number > 0"),
        ("tolerance", tolerance, tolerance > 0, "a finite number > 0"),
        ("level", level, 0 < level < 1, "a number strictly between 0 and 1"),
    ]
    for name, value, in_range, expected in checks:
        if not (in_range and math.isfinite(value)):
            raise ConfigError(f"{name}={value!r}: expected {expected}")
