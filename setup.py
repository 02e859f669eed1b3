from setuptools import find_packages, setup

with open("requirements.txt") as f:
    install_requires = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="recbole-eager",
    version="0.1.0",
    description="EAGER (KDD 2024) two-stream generative recommender as a RecBole plugin",
    packages=find_packages(include=["recbole_eager", "recbole_eager.*"]),
    package_data={"recbole_eager": ["properties/*.yaml", "properties/*/*.yaml", "properties/hyper/*.hyper"]},
    entry_points={"console_scripts": ["recbole-eager = recbole_eager.__main__:main"]},
    python_requires=">=3.9",
    install_requires=install_requires,
)
