"""The bundled location packs, loaded once for the engine's tests."""

from medspa.policy.loader import load_packs

PACKS = load_packs()
BIJOUX, SPA406, GLOW = PACKS["bijoux"], PACKS["406medicalspa"], PACKS["glow-hk"]
SCOTTSDALE, AUSTIN = PACKS["massageluxe-scottsdale"], PACKS["massageluxe-austin"]
