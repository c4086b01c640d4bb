"""ember.metrics against scikit-learn (and the documented formulas where sklearn has none), on
random data with ties and empty classes; stateful metrics against their functional forms."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.metrics as M
import ember.metrics.functional as MF

import sklearn.metrics as sk  # the `test` extra installs scikit-learn
from scipy import stats

rng = np.random.default_rng(0)
N, C, L = 60, 5, 4
# binary scores rounded to 0.1: many ties for the curves
B_PROB = rng.uniform(0, 1, N).round(1).astype(np.float32)
B_TGT = rng.integers(0, 2, N)
# multiclass: class 4 never appears in target nor wins in preds (an empty class), class 3 is
# predicted but rare in the target
_logits = rng.normal(size=(N, C))
_logits[:, 4] = -10.0
MC_PROB = (np.exp(_logits) / np.exp(_logits).sum(1, keepdims=True)).astype(np.float32)
MC_TGT = rng.choice(4, N, p=[0.4, 0.3, 0.28, 0.02])
MC_PRED = MC_PROB.argmax(1)
ML_PROB = rng.uniform(0, 1, (N, L)).round(1).astype(np.float32)
ML_TGT = rng.integers(0, 2, (N, L))
ML_TGT[:, 3] = 0  # a label with no positives


def e(a):
    return ember.tensor(a)


def val(t):
    return np.asarray(t.detach().numpy(), dtype=np.float64)


INPUTS = {
    "binary": (B_PROB, B_TGT, dict(), B_TGT, (B_PROB > 0.5).astype(int)),
    "multiclass": (MC_PROB, MC_TGT, dict(num_classes=C), MC_TGT, MC_PRED),
    "multilabel": (ML_PROB, ML_TGT, dict(num_labels=L), ML_TGT, (ML_PROB > 0.5).astype(int)),
}
SK_SCORE = {"precision": sk.precision_score, "recall": sk.recall_score, "f1_score": sk.f1_score,
            "jaccard_index": sk.jaccard_score}


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "none"])
@pytest.mark.parametrize("name", ["precision", "recall", "f1_score", "jaccard_index"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_scores_against_sklearn(task, average, name, zero_division):
    p, t, kw, y, yhat = INPUTS[task]
    got = getattr(MF, name)(e(p), e(t), task, average=average, zero_division=zero_division,
                            **kw)
    if task == "binary":
        want = SK_SCORE[name](y, yhat, average="binary", zero_division=zero_division)
    else:
        labels = list(range(C)) if task == "multiclass" and average == "none" else None
        want = SK_SCORE[name](y, yhat, average=None if average == "none" else average,
                              labels=labels, zero_division=zero_division)
    np.testing.assert_allclose(val(got), want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("beta", [0.5, 2.0])
@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_fbeta_against_sklearn(beta, average):
    got = MF.fbeta_score(e(MC_PROB), e(MC_TGT), "multiclass", beta=beta, num_classes=C,
                         average=average)
    want = sk.fbeta_score(MC_TGT, MC_PRED, beta=beta, average=average, zero_division=0)
    np.testing.assert_allclose(val(got), want, rtol=1e-6)


def test_accuracy_against_sklearn():
    acc = MF.accuracy
    np.testing.assert_allclose(val(acc(e(B_PROB), e(B_TGT), "binary")),
                               sk.accuracy_score(B_TGT, B_PROB > 0.5), rtol=1e-6)
    np.testing.assert_allclose(val(acc(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C)),
                               sk.accuracy_score(MC_TGT, MC_PRED), rtol=1e-6)
    # macro accuracy is the macro recall over classes seen in preds or target
    np.testing.assert_allclose(
        val(acc(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C, average="macro")),
        sk.recall_score(MC_TGT, MC_PRED, average="macro", zero_division=0), rtol=1e-6)
    np.testing.assert_allclose(
        val(acc(e(MC_PRED), e(MC_TGT), "multiclass", num_classes=C, average="weighted")),
        sk.recall_score(MC_TGT, MC_PRED, average="weighted", zero_division=0), rtol=1e-6)
    yhat = ML_PROB > 0.5
    np.testing.assert_allclose(val(acc(e(ML_PROB), e(ML_TGT), "multilabel", num_labels=L)),
                               (yhat == ML_TGT).mean(), rtol=1e-6)
    np.testing.assert_allclose(
        val(acc(e(ML_PROB), e(ML_TGT), "multilabel", num_labels=L, average="none")),
        (yhat == ML_TGT).mean(0), rtol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy(k):
    got = MF.accuracy(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C, top_k=k)
    want = sk.top_k_accuracy_score(MC_TGT, MC_PROB, k=k, labels=list(range(C)))
    np.testing.assert_allclose(val(got), want, rtol=1e-6)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_specificity_formula(task, average):
    p, t, kw, y, yhat = INPUTS[task]
    if task == "binary":
        cms = sk.multilabel_confusion_matrix(y, yhat, labels=[1])
    elif task == "multiclass":
        cms = sk.multilabel_confusion_matrix(y, yhat, labels=list(range(C)))
    else:
        cms = sk.multilabel_confusion_matrix(y, yhat)
    tn, fp, fn, tp = (cms[:, 0, 0], cms[:, 0, 1], cms[:, 1, 0], cms[:, 1, 1])
    per = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), 0.0)
    if task == "binary":
        want = per[0]
    elif average == "micro":
        want = tn.sum() / (tn + fp).sum()
    elif average == "none":
        want = per
    else:
        seen = (tp + fp + fn > 0) if task == "multiclass" else np.ones(per.shape, bool)
        want = per[seen].mean()
    got = MF.specificity(e(p), e(t), task, average=average, **kw)
    np.testing.assert_allclose(val(got), want, rtol=1e-6)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix(normalize):
    got = MF.confusion_matrix(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C,
                              normalize=normalize)
    with np.errstate(all="ignore"):
        want = np.nan_to_num(sk.confusion_matrix(MC_TGT, MC_PRED, labels=list(range(C)),
                                                 normalize=normalize))
    np.testing.assert_allclose(val(got), want, rtol=1e-6)
    got_b = MF.confusion_matrix(e(B_PROB), e(B_TGT), "binary")
    np.testing.assert_array_equal(val(got_b), sk.confusion_matrix(B_TGT, B_PROB > 0.5))
    got_ml = MF.confusion_matrix(e(ML_PROB), e(ML_TGT), "multilabel", num_labels=L)
    np.testing.assert_array_equal(val(got_ml),
                                  sk.multilabel_confusion_matrix(ML_TGT, ML_PROB > 0.5))
    assert got.dtype == (ember.int64 if normalize is None else ember.float32)


def test_matthews_and_kappa():
    np.testing.assert_allclose(val(MF.matthews_corrcoef(e(B_PROB), e(B_TGT), "binary")),
                               sk.matthews_corrcoef(B_TGT, B_PROB > 0.5), rtol=1e-6)
    np.testing.assert_allclose(
        val(MF.matthews_corrcoef(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C)),
        sk.matthews_corrcoef(MC_TGT, MC_PRED), rtol=1e-6)
    # constant predictions: undefined, 0 as sklearn
    assert val(MF.matthews_corrcoef(e(np.zeros(6, int)), e(B_TGT[:6]), "binary")) == 0
    for w in (None, "linear", "quadratic"):
        np.testing.assert_allclose(
            val(MF.cohen_kappa(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C, weights=w)),
            sk.cohen_kappa_score(MC_TGT, MC_PRED, weights=w), rtol=1e-6)
    np.testing.assert_allclose(val(MF.cohen_kappa(e(B_PROB), e(B_TGT), "binary")),
                               sk.cohen_kappa_score(B_TGT, B_PROB > 0.5), rtol=1e-6)


def test_auroc_and_average_precision():
    f = MF.auroc
    np.testing.assert_allclose(val(f(e(B_PROB), e(B_TGT), "binary")),
                               sk.roc_auc_score(B_TGT, B_PROB), rtol=1e-6)
    np.testing.assert_allclose(val(f(e(B_PROB), e(B_TGT), "binary", max_fpr=0.3)),
                               sk.roc_auc_score(B_TGT, B_PROB, max_fpr=0.3), rtol=1e-6)
    probs = MC_PROB[:, :4] / MC_PROB[:, :4].sum(1, keepdims=True)  # classes in the target
    for avg in ("macro", "weighted"):
        np.testing.assert_allclose(
            val(f(e(probs), e(MC_TGT), "multiclass", num_classes=4, average=avg)),
            sk.roc_auc_score(MC_TGT, probs, multi_class="ovr", average=avg), rtol=1e-5)
    ml = ML_TGT[:, :3]
    for avg in ("micro", "macro", "weighted"):
        np.testing.assert_allclose(
            val(f(e(ML_PROB[:, :3]), e(ml), "multilabel", num_labels=3, average=avg)),
            sk.roc_auc_score(ml, ML_PROB[:, :3], average=avg), rtol=1e-6)
        np.testing.assert_allclose(
            val(MF.average_precision(e(ML_PROB[:, :3]), e(ml), "multilabel", num_labels=3,
                                     average=avg)),
            sk.average_precision_score(ml, ML_PROB[:, :3], average=avg), rtol=1e-6)
    np.testing.assert_allclose(val(MF.average_precision(e(B_PROB), e(B_TGT), "binary")),
                               sk.average_precision_score(B_TGT, B_PROB), rtol=1e-6)
    onehot = np.eye(4)[MC_TGT]
    np.testing.assert_allclose(
        val(MF.average_precision(e(probs), e(MC_TGT), "multiclass", num_classes=4,
                                 average="none")),
        sk.average_precision_score(onehot, probs, average=None), rtol=1e-5)


def test_roc_and_pr_curves():
    fpr, tpr, thr = MF.roc(e(B_PROB), e(B_TGT), "binary")
    s_fpr, s_tpr, s_thr = sk.roc_curve(B_TGT, B_PROB, drop_intermediate=False)
    np.testing.assert_allclose(val(fpr), s_fpr, rtol=1e-6)
    np.testing.assert_allclose(val(tpr), s_tpr, rtol=1e-6)
    np.testing.assert_allclose(val(thr)[1:], s_thr[1:], rtol=1e-6)  # sklearn's first is inf
    prec, rec, thr = MF.precision_recall_curve(e(B_PROB), e(B_TGT), "binary")
    s_prec, s_rec, s_thr = sk.precision_recall_curve(B_TGT, B_PROB)
    np.testing.assert_allclose(val(prec), s_prec, rtol=1e-6)
    np.testing.assert_allclose(val(rec), s_rec, rtol=1e-6)
    np.testing.assert_allclose(val(thr), s_thr, rtol=1e-6)
    fprs, tprs, _ = MF.roc(e(ML_PROB), e(ML_TGT), "multilabel", num_labels=L)
    assert len(fprs) == L
    s_fpr, s_tpr, _ = sk.roc_curve(ML_TGT[:, 1], ML_PROB[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(val(fprs[1]), s_fpr, rtol=1e-6)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_calibration_error_formula(norm):
    def expected(conf, acc, n_bins=10):
        gaps, props = [], []
        for b in range(n_bins):
            lo, hi = b / n_bins, (b + 1) / n_bins
            m = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= hi))
            if m.any():
                gaps.append(abs(acc[m].mean() - conf[m].mean()))
                props.append(m.mean())
        gaps, props = np.array(gaps), np.array(props)
        return {"l1": (gaps * props).sum(), "l2": math.sqrt((gaps ** 2 * props).sum()),
                "max": gaps.max()}[norm]

    p = rng.uniform(0, 1, 200).astype(np.float64)
    t = (rng.uniform(0, 1, 200) < p).astype(int)
    got = MF.calibration_error(e(p), e(t), "binary", n_bins=10, norm=norm)
    np.testing.assert_allclose(val(got), expected(p, t), rtol=1e-9)
    got = MF.calibration_error(e(MC_PROB), e(MC_TGT), "multiclass", n_bins=10, norm=norm,
                               num_classes=C)
    np.testing.assert_allclose(val(got), expected(MC_PROB.max(1).astype(np.float64),
                                                  (MC_PRED == MC_TGT).astype(float)), rtol=1e-5)


def test_ignore_index():
    t = MC_TGT.copy()
    t[:10] = -100
    got = MF.accuracy(e(MC_PROB), e(t), "multiclass", num_classes=C, ignore_index=-100)
    np.testing.assert_allclose(val(got), sk.accuracy_score(MC_TGT[10:], MC_PRED[10:]),
                               rtol=1e-6)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_samplewise_against_sklearn(task, average):
    # one score per sample over its extra dims (torchmetrics' multidim_average='samplewise')
    r = np.random.default_rng(3)
    if task == "binary":
        p, t, kw = r.uniform(0, 1, (5, 12)), r.integers(0, 2, (5, 12)), {}
        rows = [((t[i]), (p[i] > 0.5).astype(int)) for i in range(5)]
    elif task == "multiclass":
        p, t, kw = r.integers(0, 4, (5, 12)), r.integers(0, 4, (5, 12)), dict(num_classes=4)
        rows = [(t[i], p[i]) for i in range(5)]
    else:
        p, t, kw = r.uniform(0, 1, (5, 3, 12)), r.integers(0, 2, (5, 3, 12)), dict(num_labels=3)
        rows = [(t[i].T, (p[i] > 0.5).astype(int).T) for i in range(5)]
    got = MF.precision(e(p), e(t), task, average=average, multidim_average="samplewise", **kw)
    sk_avg = "binary" if task == "binary" else average
    want = [sk.precision_score(y, yh, average=sk_avg, zero_division=0) for y, yh in rows]
    np.testing.assert_allclose(val(got), want, rtol=1e-6)
    m = M.Precision(task=task, average=average, multidim_average="samplewise", **kw)
    m.update(e(p[:2]), e(t[:2]))
    m.update(e(p[2:]), e(t[2:]))
    np.testing.assert_allclose(val(m.compute()), want, rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2D"):
        MF.accuracy(e(B_PROB), e(B_TGT), "binary", multidim_average="samplewise")
    with pytest.raises(ValueError, match="multidim_average"):
        MF.accuracy(e(B_PROB), e(B_TGT), "binary", multidim_average="per_sample")


def test_multilabel_ignore_index():
    t = ML_TGT.copy()
    t[:5, 0] = -1  # ignored entries count nowhere
    got = MF.precision(e(ML_PROB), e(t), "multilabel", num_labels=L, average="none",
                       ignore_index=-1)
    yhat = (ML_PROB > 0.5).astype(int)
    want = [sk.precision_score(ML_TGT[5:, 0], yhat[5:, 0], zero_division=0)] + [
        sk.precision_score(ML_TGT[:, j], yhat[:, j], zero_division=0) for j in range(1, L)]
    np.testing.assert_allclose(val(got), want, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), c=st.integers(2, 6), seed=st.integers(0, 999),
       average=st.sampled_from(["micro", "macro", "weighted"]))
def test_multiclass_scores_random(n, c, seed, average):
    # small samples over many classes: classes missing from target, preds or both
    r = np.random.default_rng(seed)
    y, yhat = r.integers(0, c, n), r.integers(0, c, n)
    for name in ("precision", "recall", "f1_score"):
        got = getattr(MF, name)(e(yhat), e(y), "multiclass", num_classes=c, average=average)
        want = SK_SCORE[name](y, yhat, average=average, zero_division=0)
        np.testing.assert_allclose(val(got), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(val(MF.matthews_corrcoef(e(yhat), e(y), "multiclass",
                                                        num_classes=c)),
                               sk.matthews_corrcoef(y, yhat), rtol=1e-6, atol=1e-7)


# ---- regression -------------------------------------------------------------------------------

Y = rng.normal(size=(40, 3))
YH = Y + rng.normal(scale=0.5, size=(40, 3))
YH[:, 2] = YH[:, 2].round()  # ties for Spearman


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_regression_against_sklearn(dt):
    p, t = e(YH.astype(dt)), e(Y.astype(dt))
    tol = dict(rtol=1e-9 if dt == np.float64 else 1e-5)
    np.testing.assert_allclose(val(MF.mean_absolute_error(p, t)),
                               sk.mean_absolute_error(Y, YH), **tol)
    np.testing.assert_allclose(val(MF.mean_squared_error(p, t)),
                               sk.mean_squared_error(Y, YH), **tol)
    np.testing.assert_allclose(val(MF.mean_squared_error(p, t, squared=False)),
                               math.sqrt(sk.mean_squared_error(Y, YH)), **tol)
    np.testing.assert_allclose(val(MF.mean_squared_error(p, t, num_outputs=3)),
                               sk.mean_squared_error(Y, YH, multioutput="raw_values"), **tol)
    for mo in ("raw_values", "uniform_average", "variance_weighted"):
        np.testing.assert_allclose(val(MF.r2_score(p, t, multioutput=mo)),
                                   sk.r2_score(Y, YH, multioutput=mo), **tol)
        np.testing.assert_allclose(val(MF.explained_variance(p, t, multioutput=mo)),
                                   sk.explained_variance_score(Y, YH, multioutput=mo), **tol)
    r2 = sk.r2_score(Y[:, 0], YH[:, 0])
    np.testing.assert_allclose(val(MF.r2_score(p[:, 0], t[:, 0], adjusted=3)),
                               1 - (1 - r2) * 39 / 36, **tol)
    np.testing.assert_allclose(val(MF.pearson_corrcoef(p, t)),
                               [stats.pearsonr(YH[:, i], Y[:, i])[0] for i in range(3)], **tol)
    np.testing.assert_allclose(val(MF.spearman_corrcoef(p, t)),
                               [stats.spearmanr(YH[:, i], Y[:, i])[0] for i in range(3)],
                               rtol=1e-5)
    cos = np.diag(sk.pairwise.cosine_similarity(YH, Y))
    np.testing.assert_allclose(val(MF.cosine_similarity(p, t, reduction="none")), cos, **tol)
    np.testing.assert_allclose(val(MF.cosine_similarity(p, t)), cos.sum(), **tol)
    np.testing.assert_allclose(val(MF.cosine_similarity(p, t, "mean")), cos.mean(), **tol)
    assert MF.mean_squared_error(p, t).dtype == p.dtype


def test_regression_gradients_match_torch():
    pe = ember.tensor(YH, requires_grad=True)
    pt = torch.tensor(YH, requires_grad=True)
    MF.mean_squared_error(pe, ember.tensor(Y), squared=False).backward()
    torch.nn.functional.mse_loss(pt, torch.tensor(Y)).sqrt().backward()
    np.testing.assert_allclose(pe.grad.numpy(), pt.grad.numpy(), rtol=1e-9)
    pe.grad = None
    MF.r2_score(pe, ember.tensor(Y)).backward()
    pt.grad = None
    yt = torch.tensor(Y)
    (1 - ((yt - pt) ** 2).sum(0) / ((yt - yt.mean(0)) ** 2).sum(0)).mean().backward()
    np.testing.assert_allclose(pe.grad.numpy(), pt.grad.numpy(), rtol=1e-9)


# ---- text and segmentation --------------------------------------------------------------------

def test_perplexity_against_torch():
    logits = rng.normal(size=(2, 7, 11))
    tgt = rng.integers(0, 11, (2, 7))
    tgt[0, :2] = -100
    got = MF.perplexity(e(logits), e(tgt), ignore_index=-100)
    want = torch.nn.functional.cross_entropy(torch.tensor(logits).reshape(-1, 11),
                                             torch.tensor(tgt).reshape(-1)).exp()
    np.testing.assert_allclose(val(got), want.item(), rtol=1e-9)


def test_text_documented_values():
    # torchmetrics' documented examples
    preds = ["the cat is on the mat"]
    target = [["there is a cat on the mat", "a cat is on the mat"]]
    np.testing.assert_allclose(val(MF.bleu_score(preds, target)), 0.7598, atol=1e-4)
    # smoothed by hand: unigrams 5/6 as they are, then (4+1)/(5+1), (3+1)/(4+1), (2+1)/(3+1)
    np.testing.assert_allclose(val(MF.bleu_score(preds, target, smooth=True)),
                               (5 / 6 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25, rtol=1e-6)
    p = ["this is the prediction", "there is an other sample"]
    t = ["this is the reference", "there is another one"]
    np.testing.assert_allclose(val(MF.word_error_rate(p, t)), 0.5)
    np.testing.assert_allclose(val(MF.char_error_rate(p, t)), 0.3415, atol=1e-4)
    # BLEU by hand: the unigram precision 2/3 and the brevity penalty exp(1 - 4/3)
    got = MF.bleu_score(["a b c"], [["a b d e"]], n_gram=1)
    np.testing.assert_allclose(val(got), 2 / 3 * math.exp(1 - 4 / 3), rtol=1e-6)
    assert val(MF.bleu_score(["x y"], [["a b"]])) == 0
    assert MF.edit_distance("kitten", "sitting") == 3


def test_segmentation_against_sklearn():
    p = rng.integers(0, 4, (3, 8, 8))
    t = rng.integers(0, 4, (3, 8, 8))
    p[p == 3] = 0
    t[t == 3] = 0  # class 3 absent from both: no score to average
    miou = MF.mean_iou(e(p), e(t), num_classes=4)
    np.testing.assert_allclose(val(miou), sk.jaccard_score(t.ravel(), p.ravel(),
                                                           average="macro"), rtol=1e-6)
    per = MF.mean_iou(e(p), e(t), num_classes=4, per_class=True)
    np.testing.assert_allclose(val(per), sk.jaccard_score(t.ravel(), p.ravel(), average=None,
                                                          labels=[0, 1, 2, 3],
                                                          zero_division=0), rtol=1e-6)
    dice = MF.dice_score(e(p), e(t), num_classes=4, include_background=False)
    np.testing.assert_allclose(val(dice), sk.f1_score(t.ravel(), p.ravel(), labels=[1, 2],
                                                      average="macro"), rtol=1e-6)
    onehot = lambda a: np.moveaxis(np.eye(4, dtype=int)[a], -1, 1)  # noqa: E731
    np.testing.assert_allclose(val(MF.mean_iou(e(onehot(p)), e(onehot(t)), 4,
                                               input_format="one-hot")), val(miou), rtol=1e-6)


# ---- stateful metrics ---------------------------------------------------------------------------

def _batches(a, n=3):
    return np.array_split(a, n)


STATEFUL = [
    (lambda: M.Accuracy(task="multiclass", num_classes=C, average="macro"),
     lambda p, t: MF.accuracy(p, t, "multiclass", num_classes=C, average="macro"),
     MC_PROB, MC_TGT),
    (lambda: M.F1Score(task="multilabel", num_labels=L, average="weighted"),
     lambda p, t: MF.f1_score(p, t, "multilabel", num_labels=L, average="weighted"),
     ML_PROB, ML_TGT),
    (lambda: M.Precision(task="binary"), lambda p, t: MF.precision(p, t, "binary"),
     B_PROB, B_TGT),
    (lambda: M.Recall(task="multiclass", num_classes=C, average="none"),
     lambda p, t: MF.recall(p, t, "multiclass", num_classes=C, average="none"),
     MC_PROB, MC_TGT),
    (lambda: M.Specificity(task="binary"), lambda p, t: MF.specificity(p, t, "binary"),
     B_PROB, B_TGT),
    (lambda: M.FBetaScore(task="binary", beta=2.0),
     lambda p, t: MF.fbeta_score(p, t, "binary", beta=2.0), B_PROB, B_TGT),
    (lambda: M.JaccardIndex(task="multiclass", num_classes=C),
     lambda p, t: MF.jaccard_index(p, t, "multiclass", num_classes=C), MC_PROB, MC_TGT),
    (lambda: M.ConfusionMatrix(task="multiclass", num_classes=C, normalize="true"),
     lambda p, t: MF.confusion_matrix(p, t, "multiclass", num_classes=C, normalize="true"),
     MC_PROB, MC_TGT),
    (lambda: M.MatthewsCorrCoef(task="multiclass", num_classes=C),
     lambda p, t: MF.matthews_corrcoef(p, t, "multiclass", num_classes=C), MC_PROB, MC_TGT),
    (lambda: M.CohenKappa(task="binary", weights="linear"),
     lambda p, t: MF.cohen_kappa(p, t, "binary", weights="linear"), B_PROB, B_TGT),
    (lambda: M.AUROC(task="binary"), lambda p, t: MF.auroc(p, t, "binary"), B_PROB, B_TGT),
    (lambda: M.AveragePrecision(task="multilabel", num_labels=L, average="micro"),
     lambda p, t: MF.average_precision(p, t, "multilabel", num_labels=L, average="micro"),
     ML_PROB, ML_TGT),
    (lambda: M.CalibrationError(task="binary", n_bins=5),
     lambda p, t: MF.calibration_error(p, t, "binary", n_bins=5), B_PROB, B_TGT),
    (lambda: M.MeanAbsoluteError(), MF.mean_absolute_error, YH, Y),
    (lambda: M.MeanSquaredError(squared=False),
     lambda p, t: MF.mean_squared_error(p, t, squared=False), YH, Y),
    (lambda: M.R2Score(), MF.r2_score, YH, Y),
    (lambda: M.ExplainedVariance(), MF.explained_variance, YH, Y),
    (lambda: M.PearsonCorrCoef(), MF.pearson_corrcoef, YH, Y),
    (lambda: M.SpearmanCorrCoef(), MF.spearman_corrcoef, YH, Y),
    (lambda: M.CosineSimilarity(reduction="mean"),
     lambda p, t: MF.cosine_similarity(p, t, "mean"), YH, Y),
    (lambda: M.MeanIoU(num_classes=3), lambda p, t: MF.mean_iou(p, t, 3),
     rng.integers(0, 3, (6, 4, 4)), rng.integers(0, 3, (6, 4, 4))),
    (lambda: M.DiceScore(num_classes=3, per_class=True),
     lambda p, t: MF.dice_score(p, t, 3, per_class=True),
     rng.integers(0, 3, (6, 4, 4)), rng.integers(0, 3, (6, 4, 4))),
]


@pytest.mark.parametrize("make,fn,p,t", STATEFUL,
                         ids=[type(s[0]()).__name__ for s in STATEFUL])
def test_stateful_matches_functional(make, fn, p, t):
    m = make()
    for bp, bt in zip(_batches(p), _batches(t)):
        batch = m(e(bp), e(bt))  # forward: this batch's value, and accumulates
        np.testing.assert_allclose(val(batch), val(fn(e(bp), e(bt))), rtol=1e-5, atol=1e-7)
    total = m.compute()
    np.testing.assert_allclose(val(total), val(fn(e(p), e(t))), rtol=1e-5, atol=1e-7)
    # state_dict carries the state: a fresh metric loaded from it computes the same value
    fresh = make()
    fresh.load_state_dict(m.state_dict())
    np.testing.assert_allclose(val(fresh.compute()), val(total), rtol=1e-6)
    # update-only accumulation agrees with forward's
    m2 = make()
    for bp, bt in zip(_batches(p), _batches(t)):
        m2.update(e(bp), e(bt))
    np.testing.assert_allclose(val(m2.compute()), val(total), rtol=1e-6)
    m.reset()
    m.update(e(_batches(p)[0]), e(_batches(t)[0]))
    np.testing.assert_allclose(val(m.compute()), val(fn(e(_batches(p)[0]), e(_batches(t)[0]))),
                               rtol=1e-5, atol=1e-7)


def test_text_stateful():
    p = ["this is the prediction", "there is an other sample"]
    t = ["this is the reference", "there is another one"]
    for cls, fn in ((M.WordErrorRate, MF.word_error_rate), (M.CharErrorRate,
                                                             MF.char_error_rate)):
        m = cls()
        m.update(p[:1], t[:1])
        m.update(p[1:], t[1:])
        np.testing.assert_allclose(val(m.compute()), val(fn(p, t)), rtol=1e-6)
    bleu = M.BLEUScore()
    bleu.update(["the cat is on the mat"], [["there is a cat on the mat", "a cat is on the mat"]])
    bleu.update(["a b c d e"], [["a b c d f"]])
    want = MF.bleu_score(["the cat is on the mat", "a b c d e"],
                         [["there is a cat on the mat", "a cat is on the mat"], ["a b c d f"]])
    np.testing.assert_allclose(val(bleu.compute()), val(want), rtol=1e-6)
    fresh = M.BLEUScore()
    fresh.load_state_dict(bleu.state_dict())
    np.testing.assert_allclose(val(fresh.compute()), val(want), rtol=1e-6)
    logits, tgt = rng.normal(size=(4, 5, 7)), rng.integers(0, 7, (4, 5))
    ppl = M.Perplexity()
    ppl.update(e(logits[:2]), e(tgt[:2]))
    ppl.update(e(logits[2:]), e(tgt[2:]))
    np.testing.assert_allclose(val(ppl.compute()), val(MF.perplexity(e(logits), e(tgt))),
                               rtol=1e-5)


def test_metric_collection():
    mc = M.MetricCollection([M.Accuracy(task="binary"), M.Recall(task="binary")],
                            prefix="val_")
    out = mc(e(B_PROB[:30]), e(B_TGT[:30]))
    assert set(out) == {"val_Accuracy", "val_Recall"}
    mc.update(e(B_PROB[30:]), e(B_TGT[30:]))
    res = mc.compute()
    np.testing.assert_allclose(val(res["val_Accuracy"]),
                               sk.accuracy_score(B_TGT, B_PROB > 0.5), rtol=1e-6)
    np.testing.assert_allclose(val(res["val_Recall"]), sk.recall_score(B_TGT, B_PROB > 0.5),
                               rtol=1e-6)
    sd = mc.state_dict()
    assert "Accuracy.tp" in sd and "Recall.fn" in sd
    named = M.MetricCollection({"mae": M.MeanAbsoluteError()}, postfix="/train")
    named.update(e(YH), e(Y))
    assert list(named.compute()) == ["mae/train"]
    other = mc.clone(prefix="test_")
    assert set(other.compute()) == {"test_Accuracy", "test_Recall"}
    mc.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        mc["Accuracy"].compute()
    with pytest.raises(ValueError, match="two metrics both named Accuracy"):
        M.MetricCollection([M.Accuracy(task="binary"), M.Accuracy(task="binary")])
    with pytest.raises(ValueError, match="not a instance"):
        M.MetricCollection([M.Accuracy(task="binary"), "accuracy"])


def _flat(x):
    """Every number of a tensor or a nested tuple/list of tensors (curves), in order."""
    if isinstance(x, (tuple, list)):
        return np.concatenate([_flat(v) for v in x]) if x else np.zeros(0)
    return val(x).ravel()


TASK_FORMS = ["stat_scores", "accuracy", "precision", "recall", "specificity", "f1_score",
              "jaccard_index", "confusion_matrix", "matthews_corrcoef", "auroc",
              "average_precision", "roc", "precision_recall_curve", "cohen_kappa",
              "calibration_error"]


@pytest.mark.parametrize("name", TASK_FORMS)
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_task_specific_forms(name, task):
    # torchmetrics' binary_*/multiclass_*/multilabel_* functions and Binary*/... classes are
    # the generic metric with the task fixed (and macro averaging by default)
    if task == "multilabel" and name in ("cohen_kappa", "calibration_error"):
        assert not hasattr(MF, f"{task}_{name}")
        return
    p, t, kw, _, _ = INPUTS[task]
    if name in ("auroc", "average_precision", "roc", "precision_recall_curve",
                "calibration_error") and task == "multiclass":
        p = p[:, :4] / p[:, :4].sum(1, keepdims=True)
        kw = dict(num_classes=4)
    size = list(kw.values())
    extra = {"average": "macro"} if name in TASK_FORMS[:7] and task != "binary" else {}
    got = getattr(MF, f"{task}_{name}")(e(p), e(t), *size)
    want = getattr(MF, name)(e(p), e(t), task, **kw, **extra)
    np.testing.assert_allclose(_flat(got), _flat(want))
    cls_name = {"stat_scores": "StatScores", "f1_score": "F1Score", "auroc": "AUROC",
                "roc": "ROC", "jaccard_index": "JaccardIndex"}.get(
        name, "".join(w.capitalize() for w in name.split("_")))
    cls_name = {"MatthewsCorrcoef": "MatthewsCorrCoef"}.get(cls_name, cls_name)
    metric = getattr(M, task.capitalize() + cls_name)(*size)
    metric.update(e(p), e(t))
    np.testing.assert_allclose(_flat(metric.compute()), _flat(want), rtol=1e-6)


def test_task_forms_arguments():
    assert val(MF.multiclass_fbeta_score(e(MC_PROB), e(MC_TGT), 2.0, C)) == pytest.approx(
        sk.fbeta_score(MC_TGT, MC_PRED, beta=2.0, average="macro", zero_division=0), rel=1e-6)
    m = M.MulticlassFBetaScore(0.5, C, average="micro")
    m.update(e(MC_PROB), e(MC_TGT))
    assert val(m.compute()) == pytest.approx(
        sk.fbeta_score(MC_TGT, MC_PRED, beta=0.5, average="micro"), rel=1e-6)
    with pytest.raises(TypeError, match="num_classes"):
        MF.multiclass_accuracy(e(MC_PROB), e(MC_TGT))
    with pytest.raises(TypeError, match="num_labels"):
        M.MultilabelAccuracy()
    with pytest.raises(TypeError, match="positional"):
        MF.binary_accuracy(e(B_PROB), e(B_TGT), 0.5)


def test_bad_batch_keeps_state():
    m = M.Accuracy(task="binary")
    m(e(B_PROB[:30]), e(B_TGT[:30]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m(e(B_PROB[30:] + 2), e(B_TGT[30:]))
    np.testing.assert_allclose(val(m.compute()),
                               sk.accuracy_score(B_TGT[:30], B_PROB[:30] > 0.5), rtol=1e-6)


def test_custom_metric_add_state():
    class Total(M.Metric):
        def __init__(self):
            super().__init__()
            self.add_state("total", ember.tensor(0.0), "sum")
            self.add_state("biggest", ember.tensor(-math.inf), "max")

        def update(self, x):
            self.total = self.total + x.sum()
            self.biggest = ember.maximum(self.biggest, x.max())

        def compute(self):
            return self.total, self.biggest

    m = Total()
    assert val(m(ember.tensor([1.0, 5.0]))[0]) == 6.0
    m(ember.tensor([2.0]))
    total, biggest = m.compute()
    assert val(total) == 8.0 and val(biggest) == 5.0
    assert set(m.state_dict()) >= {"total", "biggest"}
    assert M.Accuracy(task="binary", sync_on_compute=False, dist_sync_on_step=True)
    with pytest.raises(ValueError, match="Unexpected keyword"):
        M.MeanAbsoluteError(squared=True)
    with pytest.raises(ValueError, match="dist_reduce_fx"):
        m.add_state("x", ember.tensor(0.0), "median")
    with pytest.raises(ValueError, match="tensor or any empty list"):
        m.add_state("y", 3)


# ---- bad input ----------------------------------------------------------------------------------

BAD = [
    ("shape_mismatch_binary", lambda: MF.accuracy(e(B_PROB), e(B_TGT[:-1]), "binary"),
     RuntimeError, r"preds \[60\] and target \[59\]"),
    ("prob_above_one", lambda: MF.precision(e(B_PROB + 1), e(B_TGT), "binary"), ValueError,
     r"probabilities in \[0, 1\].*shape \[60\]"),
    ("prob_negative_multilabel", lambda: MF.f1_score(e(ML_PROB - 1), e(ML_TGT), "multilabel",
                                                     num_labels=L), ValueError, r"\[0, 1\]"),
    ("prob_outside_auroc", lambda: MF.auroc(e(MC_PROB * 3), e(MC_TGT), "multiclass",
                                            num_classes=C), ValueError, r"\[0, 1\]"),
    ("class_index_too_big", lambda: MF.accuracy(e(MC_PROB[:, :3]), e(MC_TGT), "multiclass",
                                                num_classes=3), RuntimeError, r"\[3\]"),
    ("pred_index_too_big", lambda: MF.recall(e(MC_TGT + 1), e(MC_TGT), "multiclass",
                                             num_classes=4), RuntimeError, r"\[4\]"),
    ("num_classes_mismatch", lambda: MF.accuracy(e(MC_PROB), e(MC_TGT), "multiclass",
                                                 num_classes=3), ValueError,
     r"\[60, 5\] and target \[60\]"),
    ("binary_target_not_01", lambda: MF.accuracy(e(B_PROB), e(B_TGT * 2), "binary"),
     RuntimeError, r"\[2\]"),
    ("float_target", lambda: MF.accuracy(e(B_PROB), e(B_PROB), "binary"), ValueError,
     "integer"),
    ("unsupported_task", lambda: MF.accuracy(e(B_PROB), e(B_TGT), "regression"), ValueError,
     "task"),
    ("unsupported_task_module", lambda: M.Accuracy(task="multiclas", num_classes=3),
     ValueError, "task"),
    ("kappa_multilabel", lambda: MF.cohen_kappa(e(ML_PROB), e(ML_TGT), "multilabel"),
     ValueError, "task"),
    ("bad_average", lambda: MF.precision(e(B_PROB), e(B_TGT), "binary", average="mean"),
     ValueError, "average"),
    ("no_num_classes", lambda: MF.accuracy(e(MC_PROB), e(MC_TGT), "multiclass"), ValueError,
     "num_classes"),
    ("top_k_too_big", lambda: MF.accuracy(e(MC_PROB), e(MC_TGT), "multiclass", num_classes=C,
                                          top_k=6), ValueError, "top_k"),
    ("top_k_int_preds", lambda: MF.accuracy(e(MC_PRED), e(MC_TGT), "multiclass",
                                            num_classes=C, top_k=2), ValueError, "top_k"),
    ("multilabel_width", lambda: MF.accuracy(e(ML_PROB), e(ML_TGT), "multilabel",
                                             num_labels=3), ValueError, r"\[60, 4\]"),
    ("regression_shapes", lambda: MF.mean_squared_error(e(Y), e(Y[:, :2])), RuntimeError,
     r"\[40, 3\] and target \[40, 2\]"),
    ("r2_one_sample", lambda: MF.r2_score(e(Y[:1]), e(Y[:1])), ValueError, r"\[1, 3\]"),
    ("r2_multioutput", lambda: MF.r2_score(e(Y), e(Y), multioutput="avg"), ValueError,
     "multioutput"),
    ("cosine_reduction", lambda: MF.cosine_similarity(e(Y), e(Y), "max"), ValueError,
     "reduction"),
    ("perplexity_dims", lambda: MF.perplexity(e(Y), e(Y)), ValueError, r"\[40, 3\]"),
    ("perplexity_target", lambda: MF.perplexity(e(np.zeros((2, 3, 4))), e(np.zeros((2, 4),
                                                                                 int))),
     ValueError, r"\[2, 3\] and \[2, 4\]"),
    ("bleu_sizes", lambda: MF.bleu_score(["a"], [["a"], ["b"]]), ValueError, "1 != 2"),
    ("wer_sizes", lambda: MF.word_error_rate(["a", "b"], ["a"]), ValueError, "2 and 1"),
    ("miou_index", lambda: MF.mean_iou(e(np.full((2, 2), 3)), e(np.zeros((2, 2), int)), 3),
     RuntimeError, r"\[3\]"),
    ("miou_shapes", lambda: MF.mean_iou(e(np.zeros((2, 2), int)), e(np.zeros((2, 3), int)), 3),
     RuntimeError, r"\[2, 2\] and target \[2, 3\]"),
    ("calibration_norm", lambda: MF.calibration_error(e(B_PROB), e(B_TGT), "binary",
                                                      norm="l3"), ValueError, "norm"),
    ("max_fpr", lambda: MF.auroc(e(B_PROB), e(B_TGT), "binary", max_fpr=1.5), ValueError,
     "max_fpr"),
    ("stateful_bad_batch", lambda: M.AUROC(task="binary").update(e(B_PROB), e(B_TGT[:5])),
     RuntimeError, r"\[60\] and target \[5\]"),
]


@pytest.mark.parametrize("name,fn,exc,match", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()
