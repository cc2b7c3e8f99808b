"""``camloc serve``: a local web page to explore maps.

:mod:`camloc.serve.engine` runs one uploaded image through the same pipeline and record builder as
``camloc localize`` (the model loaded once, one request at a time); :mod:`camloc.serve.app` is the
Starlette application (the page, its static files and the JSON API). Both need the optional
``serve`` extra (``pip install 'camloc[serve]'``).
"""
