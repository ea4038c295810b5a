"""``preprocess.py`` end to end: optional download, the dataset's index, conversion, the report."""
from __future__ import annotations

import importlib
import os
from types import ModuleType

from clmr_lib.data import DATASETS
from clmr_lib.data.processed import check_format
from clmr_lib.errors import UserError
from clmr_lib.preprocessing.convert import convert_dataset
from clmr_lib.preprocessing.download import download_dataset
from clmr_lib.preprocessing.report import PreprocessReport


def standard_names() -> list[str]:
    """Registry names of the datasets preprocess.py converts (those with a module and its ``build_index``)."""
    return sorted(name for name, factory in DATASETS.items() if getattr(factory, "module", None))


def dataset_module(name: str) -> ModuleType:
    """The module of a standard dataset (``clmr_lib.data.<name>``), with one-line errors for other names."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}' (--dataset); choose one of: {', '.join(standard_names())}")
    module = getattr(DATASETS[name], "module", None)
    if module is None:
        raise UserError(f"preprocess.py converts the datasets {', '.join(standard_names())}; '{name}' has no "
                        "files to convert")
    return importlib.import_module(module)


def download_folder(dataset_dir: str, folder: str) -> str:
    """Where ``--download`` puts a dataset: ``--dataset_dir`` if it is named after it, else a subfolder."""
    dataset_dir = os.path.abspath(os.path.expanduser(str(dataset_dir)))
    return dataset_dir if os.path.basename(dataset_dir.rstrip(os.sep)) == folder else os.path.join(dataset_dir, folder)


def run_preprocessing(config: dict) -> PreprocessReport:
    """Download (with ``config["download"]``) and convert the dataset ``config["dataset"]``.

    Args:
        config: The configuration: ``dataset``, ``dataset_dir``, ``sample_rate``, ``workers``
            (processes; 0 = one per CPU), ``processed_format``, ``download``, the dataset's own
            keys (``mtt_split``, ``fma_subset``, ...) and optionally ``progress``.

    Returns:
        The run's report (also saved as ``report.json`` next to the converted files).
    """
    module = dataset_module(str(config["dataset"]))
    format_name = check_format(config.get("processed_format", "wav"))
    sample_rate = int(config["sample_rate"])
    if sample_rate <= 0:
        raise UserError(f"--sample_rate must be a positive number of Hz, got {sample_rate}")
    progress = bool(config.get("progress", True))
    if config.get("download"):
        spec_of = getattr(module, "download_spec", None)
        if spec_of is None:
            raise UserError(f"dataset '{config['dataset']}' is not openly downloadable; drop --download and put its "
                            f"files under --dataset_dir as described in {module.__name__.replace('.', '/')}.py")
        spec = spec_of(config)
        download_dataset(spec, download_folder(config["dataset_dir"], spec.folder), progress)
    index = module.build_index(config)
    if not index.entries:
        example = f" (e.g. {index.problems[0][0]}: {index.problems[0][1]})" if index.problems else ""
        raise UserError(f"{index.metadata} lists no usable file of dataset '{index.name}' in {index.root}{example}; "
                        "check --dataset_dir and the dataset's options")
    workers = int(config.get("workers", 0))
    workers = workers if workers > 0 else (os.cpu_count() or 1)
    return convert_dataset(index, sample_rate, format_name, workers=workers, progress=progress)
