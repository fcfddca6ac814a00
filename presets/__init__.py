"""Presets shipped with singvc, installed as the package ``singvc.presets``.

``*.toml``: named settings bundles for ``--preset NAME`` (see :mod:`singvc.config`).
``voices/*.json``: voice profiles made from CC BY 4.0 clips (see ``singvc voice list``).
"""
