"""The ``memscape run`` recipes: one module per experiment, found by :func:`~memscape.experiments.registry.discover`.

A recipe is config (:func:`~memscape.experiments.registry.option` fields), grid,
reduction, checks and figures; the science it uses lives in the library.
"""
