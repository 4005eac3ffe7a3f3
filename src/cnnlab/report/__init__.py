"""Figures and reports drawn from run directories."""
