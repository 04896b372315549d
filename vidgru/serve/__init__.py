"""The events service behind ``vidgru serve``: a REST API and a review page over the event JSONL files,
and the pipeline's Prometheus metrics.

Modules: ``store`` (events read from the JSONL files), ``marks`` (false-positive marks, SQLite),
``chart`` (the score timeline as SVG), ``metrics`` (/metrics), ``export`` (``vidgru events export``),
``app`` (the FastAPI app), ``templates/`` and ``static/`` (the page; no build step).

Example::

    from vidgru.serve.app import ServeSettings, create_app
    app = create_app(ServeSettings(sources=[Path("events.jsonl")], marks=Path("review.sqlite")))
"""
