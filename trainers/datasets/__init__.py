"""Readers for anti-spoofing datasets: the open corpus and the public ones, behind one interface."""
