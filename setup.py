from setuptools import find_packages, setup

setup(
    name="pudet",
    version="0.1.0",
    description="Positive-unlabeled data purification in the wild for object detection (detectron2 extension)",
    packages=find_packages(include=("pudet", "pudet.*")),
    python_requires=">=3.8",
    install_requires=[
        "torch>=1.10",
        "torchvision",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "pycocotools>=2.0.2",
        "faster-coco-eval>=1.8",
        "numpy",
        "opencv-python-headless",
        "Pillow",
        "scikit-learn",
        "matplotlib",
        "tabulate",
        "tqdm",
        "submitit",  # tools/submit.py (SLURM)
    ],
    extras_require={"test": ["pytest", "ruff"]},
)
