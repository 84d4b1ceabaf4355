"""``radpipe synth …``: write synthetic DICOM studies with ground truth.

The lead wires this group into the main CLI (``radpipe.cli``); it also runs on its own via
``python -m radpipe.synth.cli``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from radpipe.synth.protocols import VENDORS

KIND_HELP = {
    "mr-glioma": "MR brain with a glioma (necrotic core, enhancing rim, edema; BraTS labels).",
    "mr-metastasis": "MR brain with 1-15 enhancing metastases of 2-30 mm.",
    "ct-hemorrhage": "Non-contrast CT head with one to three hemorrhage subtypes.",
    "mr-normal": "MR brain without pathology.",
    "ct-normal": "Non-contrast CT head without pathology.",
}


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out} exists and is not a directory")
    holds_study = (out / "truth" / "truth.json").exists() or (out / "dicom").exists()
    if out.is_dir() and holds_study and not force:
        raise click.ClickException(
            f"{out} already holds a study; pass --force to overwrite it or choose another --out"
        )


def _make_command(kind: str) -> click.Command:
    @click.command(name=kind, help=KIND_HELP[kind] + " Writes OUT/dicom/ and OUT/truth/.")
    @click.option(
        "--out",
        "out",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Output directory (created).",
    )
    @click.option(
        "--seed",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="Random seed; the same seed writes the same study, UIDs included.",
    )
    @click.option(
        "--vendor",
        type=click.Choice(VENDORS, case_sensitive=False),
        default=None,
        help="Scanner vendor whose header habits to imitate (default: drawn from seed).",
    )
    @click.option("--patient-id", default=None, help="PatientID (default: synthetic, from seed).")
    @click.option(
        "--accession", default=None, help="AccessionNumber (default: 8 digits from seed)."
    )
    @click.option(
        "--patient-name",
        default=None,
        help="PatientName in DICOM PN form (default: SYNTH^<KIND>^<seed>).",
    )
    @click.option("--small", is_flag=True, help="Smaller matrices and fewer slices (fast tests).")
    @click.option("--force", is_flag=True, help="Write even if OUT already holds a study.")
    def command(
        out: Path,
        seed: int,
        vendor: str | None,
        patient_id: str | None,
        accession: str | None,
        patient_name: str | None,
        small: bool,
        force: bool,
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from radpipe.synth.study import generate_study, truth_summary

        if accession is not None and not (1 <= len(accession) <= 16):
            raise click.BadParameter("must be 1 to 16 characters", param_hint="--accession")
        if patient_id is not None and not (1 <= len(patient_id) <= 64):
            raise click.BadParameter("must be 1 to 64 characters", param_hint="--patient-id")
        _check_out(out, force)
        if force:
            import shutil

            for sub in ("dicom", "truth"):  # only what a previous study wrote
                shutil.rmtree(out / sub, ignore_errors=True)
        console = Console(stderr=True)
        start = time.perf_counter()
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[step]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(kind, total=None, step="")

            def progress(msg: str) -> None:
                bar.update(task, step=msg)

            try:
                truth = generate_study(
                    kind,
                    out,
                    seed=seed,
                    vendor=vendor.lower() if vendor else None,
                    patient_id=patient_id,
                    accession=accession,
                    patient_name=patient_name,
                    small=small,
                    progress=progress,
                )
            except (ValueError, OSError) as exc:
                raise click.ClickException(str(exc)) from exc
        elapsed = time.perf_counter() - start
        n = sum(s.n_instances for s in truth.series)
        click.echo(f"wrote {n} images in {len(truth.series)} series to {out} ({elapsed:.1f} s)")
        click.echo(truth_summary(truth))
        click.echo(f"accession {truth.accession}  study {truth.study_instance_uid}")

    return command


@click.group(name="synth")
def synth() -> None:
    """Synthetic studies: DICOM with vendor-realistic headers plus ground truth.

    No patient data: anatomy comes from the MNI152 templates shipped with nilearn, pathology
    is painted in, and each series is resampled into its own geometry.
    """


for _kind in KIND_HELP:
    synth.add_command(_make_command(_kind))


@synth.command(name="corpus")
@click.option(
    "--app",
    required=True,
    type=click.Choice(["glioma", "metastasis", "hemorrhage", "normal"]),
    help="Which app the corpus trains (hemorrhage mixes in normal heads).",
)
@click.option("--n", "n", required=True, type=click.IntRange(min=1), help="Number of cases.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory; case i goes to OUT/case_<i>.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Base seed; case i uses seed + i.",
)
@click.option(
    "--vendor",
    type=click.Choice(VENDORS, case_sensitive=False),
    default=None,
    help="Pin one vendor (default: rotate through all four).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel processes (default: CPU count).",
)
@click.option("--small", is_flag=True, help="Smaller matrices and fewer slices.")
def corpus(
    app: str, n: int, out: Path, seed: int, vendor: str | None, workers: int | None, small: bool
) -> None:
    """Write many cases for training, in parallel; finished cases are kept (resumable)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from radpipe.synth.corpus import generate_corpus, plan_corpus, write_index

    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out} exists and is not a directory")
    cases = plan_corpus(app, n, out, seed=seed, vendor=vendor.lower() if vendor else None)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(
        TextColumn(f"[bold]corpus {app}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(app, total=len(cases))
        try:
            rows = generate_corpus(
                cases, workers=workers, small=small, on_done=lambda _r: bar.advance(task)
            )
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
    index = write_index(out, app, seed, rows)
    click.echo(f"wrote {len(rows)} cases to {out} (index {index})")


if __name__ == "__main__":
    synth()
