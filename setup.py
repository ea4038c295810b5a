"""Install clmr_lib: self-supervised music representation learning (CLMR) on today's stack."""
from setuptools import find_packages, setup

setup(
    name="clmr_lib",
    version="0.1.0",
    description="Contrastive learning of musical representations (CLMR), SampleCNN and MusicFM encoders, "
    "and the evaluation pipeline of music information retrieval.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["clmr_lib", "clmr_lib.*"]),
    package_data={"clmr_lib": ["data/splits/*", "config/*.yaml"]},
    include_package_data=True,
    install_requires=[
        # torchaudio's compiled extension loads only beside its exact torch release.
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "lightning>=2.4,<3",
        "audiomentations>=0.40",
        "numpy>=1.24",
        "scikit-learn>=1.3",
        "soundfile>=0.12",
        "soxr>=0.3",
        "pyyaml>=6",
        "tqdm>=4.60",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "pandas>=2.0",
    ],
    # bench: what benchmarks/ compares against beyond the core stack (audiomentations' RoomSimulator).
    extras_require={"dev": ["pytest>=7.4", "pytest-timeout>=2.2"], "bench": ["pyroomacoustics>=0.7"]},
    entry_points={
        "console_scripts": [
            "clmr-pretrain=clmr_lib.cli.pretrain:main",
            "clmr-evaluate=clmr_lib.cli.evaluate:main",
            "clmr-preprocess=clmr_lib.cli.preprocess:main",
            "clmr-export=clmr_lib.cli.export:main",
        ]
    },
)
