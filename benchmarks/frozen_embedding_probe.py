"""Write docs/frozen-embeddings.md: does a frozen pretrained speaker encoder tell synthetic speech
from real on families it never saw? (issue 16's optional pretrained front ends)

The GE2E speaker encoder of the resemblyzer 0.1.4 wheel (Apache-2.0; ``pip download --no-deps
resemblyzer==0.1.4``, unzip it, pass ``resemblyzer/pretrained.pt``; nothing is fetched here)
embeds every scoring window: ``dfd eval``'s windows (2 s every 0.5 s, each less its mean; every
1 s for the training protocols), each set to -30 dBFS as resemblyzer sets quiet speech, 40
power-mel bands, a 3-layer LSTM, unit length. A head (logistic regression, or a 128-unit MLP) is
trained on the training protocols' windows with both classes weighted alike, and its weight
decay and epoch chosen by the EER on ``--select`` (held-out families). Each ``--test`` protocol
is scored as ``dfd eval`` scores (the mean window log-odds per utterance) and broken down by
held-out family as ``benchmarks/results_table.py`` does. ``--fuse NAME=SCORES`` adds a bundle's
``dfd eval`` scores for test NAME and ``--fuse-select SCORES`` its scores on ``--select``: the two
are standardised on the selection set and mixed with the weight that is best there.

    python benchmarks/frozen_embedding_probe.py --weights resemblyzer/pretrained.pt \\
        --corpus corpus --train train.txt --select dev.unseen.txt \\
        --test eval.unseen.txt [--test ...] [--head linear|mlp] [--cache DIR] \\
        [--fuse-select DEV_SCORES --fuse eval.unseen.txt=EVAL_SCORES] [--out docs/...md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
import torchaudio
from results_table import group_eers, markdown_table

from dfd.dsp.audio_io import load_audio
from dfd.dsp.extract import remove_mean, scoring_windows
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.datasets import read_dataset
from dfd.trainers.metrics import spoofness_eer

SAMPLE_RATE = 16000
LEVEL_DBFS = -30.0  # resemblyzer's audio_norm_target_dBFS
DECAYS = (1e-2, 1e-1, 1.0)  # AdamW's decoupled decay: 1.0 shrinks the weights by 0.1 % a step


class SpeakerEncoder(torch.nn.Module):
    """resemblyzer's VoiceEncoder: its mel front end (``mels``) and network (``forward``: mels ->
    unit-length 256-dim embeddings)."""

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40, power=2.0,
            norm="slaney", mel_scale="slaney", pad_mode="constant",
        )  # fmt: skip  # librosa's defaults, as resemblyzer calls it: 25 ms every 10 ms
        self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        self.digest = "untrained"  # names cached embeddings: other weights, other files
        if weights is not None:
            self.digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
            state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
            self.load_state_dict(state, strict=False)  # the wheel also holds a loss's scale

    def mels(self, windows: torch.Tensor) -> torch.Tensor:
        """(windows, samples) -> (windows, frames, 40), each window set to LEVEL_DBFS."""
        rms = windows.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12).sqrt()
        return self.mel(windows * (10 ** (LEVEL_DBFS / 20) / rms)).transpose(1, 2)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        return self(self.mels(windows))


class EmbeddedProtocol:
    """Every window's embedding of a protocol, its owner trial, and the trials' labels."""

    def __init__(self, embeddings: np.ndarray, owners: np.ndarray, ids: list[str],
                 attacks: list[str], spoof: np.ndarray) -> None:  # fmt: skip
        self.embeddings, self.owners = embeddings, owners
        self.ids, self.attacks, self.spoof = ids, attacks, spoof

    @classmethod
    def build(cls, encoder: SpeakerEncoder, protocol: Path, hop_s: float,
              cache: Path | None) -> EmbeddedProtocol:  # fmt: skip
        trials = read_dataset(protocol)
        ids = [trial.utterance_id for trial in trials]
        attacks = [trial.attack for trial in trials]
        spoof = np.array([trial.label == "spoof" for trial in trials])
        target = (
            None if cache is None else cache / f"{protocol.stem}-hop{hop_s:g}-{encoder.digest}.npz"
        )
        if target is not None and target.is_file():
            with np.load(target) as stored:
                if list(stored["ids"]) == ids:
                    return cls(stored["embeddings"], stored["owners"], ids, attacks, spoof)
        geometry = WindowGeometry(SAMPLE_RATE, 2.0, hop_s)
        owners: list[int] = []
        pending: list[np.ndarray] = []
        parts: list[np.ndarray] = []

        def flush() -> None:
            batch = torch.from_numpy(remove_mean(np.stack(pending)).astype(np.float32))
            with torch.inference_mode():
                parts.append(encoder.embed_windows(batch).numpy())
            pending.clear()

        for index, trial in enumerate(trials):
            audio = load_audio(trial.path, sample_rate=SAMPLE_RATE).samples[0]
            for window in scoring_windows(audio, geometry):
                owners.append(index)
                pending.append(window.samples)
                if len(pending) == 64:
                    flush()
        if pending:
            flush()
        embedded = cls(np.concatenate(parts), np.array(owners), ids, attacks, spoof)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            np.savez(target, embeddings=embedded.embeddings, owners=embedded.owners, ids=ids)
        return embedded

    def utterance_means(self, window_values: np.ndarray) -> np.ndarray:
        trials = len(self.ids)
        counts = np.bincount(self.owners, None, trials)
        return np.asarray(np.bincount(self.owners, window_values, trials) / counts)


class Head:
    """A head on standardised embeddings: per window, the log-odds that it is spoofed."""

    def __init__(self, kind: str, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = mean, std
        self.network = (
            torch.nn.Linear(256, 1)
            if kind == "linear"
            else torch.nn.Sequential(
                torch.nn.Linear(256, 128),
                torch.nn.ReLU(),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(128, 1),
            )
        )

    def inputs(self, embeddings: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((embeddings - self.mean) / self.std).astype(np.float32))

    def utterance_spoofness(self, data: EmbeddedProtocol) -> np.ndarray:
        self.network.eval()
        with torch.inference_mode():
            windows = self.network(self.inputs(data.embeddings)).squeeze(1).double().numpy()
        return data.utterance_means(windows)


def train_head(kind: str, train: list[EmbeddedProtocol], select: EmbeddedProtocol,
               epochs: int) -> tuple[Head, dict[str, Any]]:  # fmt: skip
    """Every decay in DECAYS for ``epochs`` epochs; keep the (decay, epoch) best on ``select``."""
    embeddings = np.concatenate([part.embeddings for part in train])
    labels = np.concatenate([part.spoof[part.owners] for part in train]).astype(np.float32)
    mean, std = embeddings.mean(axis=0), embeddings.std(axis=0) + 1e-6
    targets = torch.from_numpy(labels)
    share = float(labels.mean())
    weights = torch.where(targets > 0.5, 0.5 / share, 0.5 / (1 - share))
    best: tuple[float, float, int, dict[str, torch.Tensor]] | None = None
    curves: dict[str, list[float]] = {}
    for decay in DECAYS:
        torch.manual_seed(0)
        head = Head(kind, mean, std)
        inputs = head.inputs(embeddings)
        optimiser = torch.optim.AdamW(head.network.parameters(), lr=1e-3, weight_decay=decay)
        curve = curves.setdefault(f"{decay:g}", [])
        for epoch in range(1, epochs + 1):
            head.network.train()
            order = torch.randperm(len(targets))
            for start in range(0, len(order), 256):
                rows = order[start : start + 256]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    head.network(inputs[rows]).squeeze(1), targets[rows], weight=weights[rows]
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            eer = spoofness_eer(head.utterance_spoofness(select), select.spoof)
            curve.append(eer)
            if best is None or eer < best[0]:
                state = {k: v.clone() for k, v in head.network.state_dict().items()}
                best = (eer, decay, epoch, state)
    assert best is not None
    head = Head(kind, mean, std)
    head.network.load_state_dict(best[3])
    return head, {"select_eer": best[0], "decay": best[1], "epoch": best[2], "curves": curves}


def read_spoofness(scores: Path, ids: list[str]) -> np.ndarray:
    """A ``dfd eval`` scores.txt (higher = bona fide) as spoofness, in the order of ``ids``."""
    table = {}
    for line in scores.read_text().splitlines():
        fields = line.split()
        table[fields[0]] = -float(fields[-1])
    return np.array([table[utterance] for utterance in ids])


class Fusion:
    """Both systems' spoofness standardised on the selection set, mixed by ``weight``."""

    def __init__(self, own: np.ndarray, other: np.ndarray, spoof: np.ndarray) -> None:
        self.scales = (own.mean(), own.std(), other.mean(), other.std())
        eers = [(spoofness_eer(self.mix(own, other, w), spoof), w) for w in np.linspace(0, 1, 21)]
        self.select_eer, self.weight = min(eers)

    def mix(self, own: np.ndarray, other: np.ndarray, weight: float | None = None) -> np.ndarray:
        weight = self.weight if weight is None else weight
        own_mean, own_std, other_mean, other_std = self.scales
        return np.asarray(
            weight * (own - own_mean) / own_std + (1 - weight) * (other - other_mean) / other_std
        )


def encoder_cost_ms(encoder: SpeakerEncoder, workdir: Path) -> dict[str, float]:
    """One 2 s window, one thread, batch 1, median of 30: the mel front end in torch, the
    encoder's network exported to ONNX Runtime."""
    window = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 32000)) * 0.1).float()
    with torch.no_grad():  # not inference mode: the export traces through these tensors
        mels = encoder.mels(window)
    path = workdir / "speaker-encoder.onnx"
    torch.onnx.export(encoder, (mels,), str(path), input_names=["mels"], dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {"mels": mels.numpy()}

    def median_ms(run: Any) -> float:
        for _ in range(5):
            run()
        times = []
        for _ in range(30):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    with torch.inference_mode():
        front = median_ms(lambda: encoder.mels(window))
    return {"mel_ms": front, "network_ms": median_ms(lambda: session.run(None, inputs))}


def group_table(groups: dict[str, dict[str, tuple[float, int]]]) -> list[str]:
    """One row per protocol, one column per held-out group (spoof families first)."""
    names = sorted({group for found in groups.values() for group in found},
                   key=lambda group: (group.endswith("(real)"), group))  # fmt: skip
    cells = [
        [protocol]
        + [f"{100 * found[g][0]:.2f} % ({found[g][1]})" if g in found else "-" for g in names]
        for protocol, found in groups.items()
    ]
    return markdown_table(["protocol", *names], cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--train", action="append", required=True, help="protocol file name")
    parser.add_argument("--select", required=True)
    parser.add_argument("--test", action="append", required=True)
    parser.add_argument("--head", choices=["linear", "mlp"], default="linear")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--fuse-select", type=Path)
    parser.add_argument("--fuse", action="append", default=[], help="TEST=SCORES")
    parser.add_argument("--fuse-name", default="the bundle")
    parser.add_argument("--out", type=Path, default=Path("docs/frozen-embeddings.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    protocols = args.corpus / "protocols"
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    encoder = SpeakerEncoder(args.weights).eval()
    workdir = args.cache or args.out.parent
    workdir.mkdir(parents=True, exist_ok=True)
    cost = encoder_cost_ms(encoder, workdir)

    def embedded(name: str, hop_s: float) -> EmbeddedProtocol:
        return EmbeddedProtocol.build(encoder, protocols / name, hop_s, args.cache)

    train = [embedded(name, 1.0) for name in args.train]
    select = embedded(args.select, 0.5)
    head, chosen = train_head(args.head, train, select, args.epochs)
    fusion = None
    if args.fuse_select is not None:
        own = head.utterance_spoofness(select)
        fusion = Fusion(own, read_spoofness(args.fuse_select, select.ids), select.spoof)
    fused_scores = dict(item.split("=", 1) for item in args.fuse)

    rows: list[list[str]] = []
    groups: dict[str, dict[str, tuple[float, int]]] = {}
    for name in args.test:
        data = embedded(name, 0.5)
        spoofness = head.utterance_spoofness(data)
        row = [name, f"{100 * spoofness_eer(spoofness, data.spoof):.2f} %"]
        if fusion is not None:
            if name in fused_scores:
                other = read_spoofness(Path(fused_scores[name]), data.ids)
                row += [
                    f"{100 * spoofness_eer(other, data.spoof):.2f} %",
                    f"{100 * spoofness_eer(fusion.mix(spoofness, other), data.spoof):.2f} %",
                ]
            else:
                row += ["-", "-"]
        rows.append(row)
        scores = workdir / f"{Path(name).stem}.head-scores.txt"
        scores.write_text(
            "".join(
                f"{utt} {attack} {'spoof' if is_spoof else 'bonafide'} {-value:.6f}\n"
                for utt, attack, is_spoof, value in zip(
                    data.ids, data.attacks, data.spoof, spoofness, strict=True
                )
            )
        )
        groups[name] = group_eers(scores, manifest, name.split(".")[0])

    command = (
        f"python benchmarks/frozen_embedding_probe.py --weights {args.weights} "
        f"--corpus {args.corpus} "
        + " ".join(f"--train {name}" for name in args.train)
        + f" --select {args.select} "
        + " ".join(f"--test {name}" for name in args.test)
        + f" --head {args.head} --epochs {args.epochs}"
        + (f" --fuse-select {args.fuse_select}" if args.fuse_select else "")
        + "".join(f" --fuse {item}" for item in args.fuse)
        + (f' --fuse-name "{args.fuse_name}"' if args.fuse else "")
        + f" --out {args.out}"
    )
    header = ["protocol", f"{args.head} head on GE2E"]
    if fusion is not None:
        header += [args.fuse_name, f"fused (weight {fusion.weight:.2f} on the head)"]
    lines = [
        "# A frozen speaker encoder as a front end (GE2E, resemblyzer 0.1.4)",
        "",
        "Generated by `benchmarks/frozen_embedding_probe.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- cost of one 2 s window, one thread, batch 1: mel front end {cost['mel_ms']:.2f} ms "
        f"(torch), encoder {cost['network_ms']:.2f} ms (ONNX Runtime)",
        f"- training windows: {sum(len(part.owners) for part in train)} "
        f"({', '.join(args.train)}, every 1 s); head chosen on {args.select}: weight decay "
        f"{chosen['decay']:g}, epoch {chosen['epoch']}, EER {100 * chosen['select_eer']:.2f} %"
        + (
            ""
            if fusion is None
            else f"; fused there {100 * fusion.select_eer:.2f} % (weight {fusion.weight:.2f})"
        ),
        "- EER: the ASVspoof way, one score per utterance (the mean window log-odds).",
        "",
        *markdown_table(header, rows),
        "",
        "EER per held-out group (each spoof family against every bona fide trial, each real "
        "group against every spoof; trials in brackets), the head alone:",
        "",
        *group_table(groups),
        "",
        "Selection EER per epoch, per weight decay: "
        + "; ".join(
            f"{decay}: " + ", ".join(f"{100 * eer:.2f}" for eer in curve)
            for decay, curve in chosen["curves"].items()
        ),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
