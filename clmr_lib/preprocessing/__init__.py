"""Preprocessing: convert a standard dataset once to the training format; download the open ones."""
from clmr_lib.preprocessing.convert import convert_dataset, convert_file
from clmr_lib.preprocessing.pipeline import run_preprocessing
from clmr_lib.preprocessing.report import PreprocessReport

__all__ = ["PreprocessReport", "convert_dataset", "convert_file", "run_preprocessing"]
