"""The sensor dashboard drawn with Pillow: tiles, header, pages, the full-screen alarm view.

``model.Dashboard`` holds what is shown (fed from the bus), ``render.Renderer`` draws it.
"""
