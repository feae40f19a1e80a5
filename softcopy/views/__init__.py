"""Presentation shared by the faces: pure functions from the service's values to pictures
(SVG, HTML, text). Faces (the dashboard, the report notebooks) import it; it imports no
face."""
