#!/usr/bin/env python
import os.path as osp
from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version():
    version_file = osp.join('mmtfclip', 'version.py')
    with open(version_file, encoding='utf-8') as f:
        exec(compile(f.read(), version_file, 'exec'))
    return locals()['__version__']


def parse_requirements(fname):
    """Read the requirement names of a pip file, following ``-r`` lines."""
    requires = []
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                sub = osp.join(osp.dirname(fname), line.split(' ', 1)[1])
                requires.extend(parse_requirements(sub))
            else:
                requires.append(line)
    return requires


if __name__ == '__main__':
    setup(
        name='mmtfclip',
        version=get_version(),
        description='OpenMMLab-style codebase for video-based person '
        're-identification with TF-CLIP',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, person re-identification, video, CLIP',
        packages=find_packages(exclude=('configs', 'tools', 'tests')),
        include_package_data=True,
        python_requires='>=3.9',
        license='Apache License 2.0',
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        install_requires=parse_requirements('requirements/runtime.txt') +
        parse_requirements('requirements/mminstall.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
        },
        zip_safe=False)
