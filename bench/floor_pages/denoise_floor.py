"""Floor (b) of bench/floor.py: the Denoise page's noise slider (same label, range, step,
default and key) and one st.image that depends on it. Nothing else: what a slider step
costs on this stack."""
import numpy as np
import streamlit as st

from aecore.noise_kinds import LEVEL_HELP, LEVEL_RANGE, NOISE_KINDS   # torch-free

kind = NOISE_KINDS[0]   # the page's default noise
top, step, default = LEVEL_RANGE[kind]
level = st.slider("Noise level", 0.0, top, default, step, key=f"level_{kind}", help=LEVEL_HELP[kind])
noise = np.random.default_rng(0).standard_normal((28, 28))
image = np.clip(0.5 + level * noise, 0, 1)   # one 28x28 picture, enlarged 3x as the page shows it
st.image(np.kron(image, np.ones((3, 3))), width=84, clamp=True)
