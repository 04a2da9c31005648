"""dgsct_jax: DG-SCT (NeurIPS 2023) in JAX/Flax NNX.

One pinned dependency set. Runtime: JAX on CPU (the `tpu` extra for TPU VMs).
`test` adds the PyTorch side used for parity tests and weight conversion; timm,
laion-clap and torchlibrosa are installed with --no-deps by the Makefile because
their declared requirements pull a CUDA torch and numpy<2.
"""
import setuptools

JAX_VERSION = "0.10.2"

RUNTIME = [
    f"jax=={JAX_VERSION}",
    f"jaxlib=={JAX_VERSION}",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "tensorflow-datasets==4.9.10",
    "array-record==0.8.6",
    "grain==0.2.18",
    "ml-collections==1.1.0",
    "chex==0.1.92",
    "einops==0.8.2",
    "pillow==13.0.0",
    "importlib_resources==7.1.0",
    "absl-py==2.5.1",
    "numpy==2.4.6",
    "h5py==3.16.0",
    "tqdm==4.70.1",
    "tensorboardX==2.6.5",
    "matplotlib==3.11.2",
]

TEST = [
    "torch==2.13.0",
    "safetensors==0.8.0",
    "librosa==0.11.0",
    "scipy==1.17.1",
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "pytest-timeout==2.4.0",
    # Runtime needs of timm / laion-clap, which themselves go in with --no-deps.
    "huggingface_hub==2.4.0",
    "pyyaml==6.0.4",
]

# Installed with `pip install --no-deps` (see Makefile): their declared
# requirements would replace the CPU torch and downgrade numpy.
NO_DEPS = ["timm==1.0.31", "laion-clap==1.1.7", "torchlibrosa==0.1.0"]

setuptools.setup(
    name="dgsct_jax",
    version="0.1.0",
    description="DG-SCT audio-visual adapters for frozen Swin-V2 and HTS-AT, in JAX/Flax NNX",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["dgsct_jax", "dgsct_jax.*",
                                               "weight_conversion", "weight_conversion.*"]),
    include_package_data=True,
    install_requires=RUNTIME,
    extras_require={
        "test": TEST,
        "tpu": [f"jax[tpu]=={JAX_VERSION}"],
    },
)
