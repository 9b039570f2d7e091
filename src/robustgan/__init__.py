"""robustgan: GANs whose discriminator is robust to adversarial attacks.

After Zhou & Kraehenbuehl, "Don't Let Your Discriminator Be Fooled" (ICLR 2019).
"""
__version__ = "0.1.0"
