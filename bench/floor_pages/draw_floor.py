"""Floor (a) of bench/floor.py: the Draw page's canvas, with the same arguments, and one
st.image of the PNG it sends. Nothing else: what a stroke costs on this stack."""
import streamlit as st
from streamlit_drawable_canvas import st_canvas

result = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
                   width=280, height=280, update_streamlit=True, return_image_data=True,
                   key="draw_canvas_0")
if result.image_bytes:
    st.image(result.image_bytes, width=140)
