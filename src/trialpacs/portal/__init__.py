"""What the reviewer portal shows, as plain values: the worklist, upload targets, CSRF tokens.

The web adapter in ``trialpacs.web.portal`` renders these; nothing here knows
about HTTP or templates.
"""
