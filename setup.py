"""Install SkeletonAgent: ``pip install -e .`` (add ``[tests]`` for the test extras).

torch is required but deliberately left unpinned and is never upgraded by this file: install
the build that fits your machine first (a CPU build: ``pip install torch==2.13.0``).
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


version: dict = {}
VIDEO_EXTRA = ['mediapipe==0.10.21', 'numpy<2', 'protobuf<5', 'onnx==1.17.0', 'onnxruntime==1.20.1',
               'scikit-image==0.24.0']
exec((HERE / 'skeletonagent' / 'version.py').read_text(), version)

setup(
    name='skeletonagent',
    version=version['__version__'],
    description='SkeletonAgent: an LLM agent loop guiding a GCN skeleton action recognizer',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['skeletonagent', 'skeletonagent.*']),
    # Files the library reads at run time (importlib.resources): they must be in the wheel.
    package_data={'skeletonagent.data': ['label_map/*.txt', 'ntu_missing/*.txt'],
                  'skeletonagent.evaluation.report': ['template.html']},
    include_package_data=True,
    install_requires=read_requirements('requirements.txt'),
    extras_require={
        'tests': ['pytest>=7', 'pytest-timeout', 'pytest-xdist>=3', 'filelock', 'ruff==0.17.6'],
        # Own videos (pose extraction, the video / camera demo, ONNX export): MediaPipe's
        # legacy `solutions` ship their model files in this wheel (later releases dropped
        # them); it needs numpy<2 and protobuf<5. scikit-image ships the photograph the pose
        # tests use. See README, "Your own actions".
        'video': VIDEO_EXTRA,
    },
)
