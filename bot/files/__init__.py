"""File renderers for exports: doctor PDF, ZIP bundle, FHIR, chart.

Heavy libraries (matplotlib, fpdf2) are imported by these modules only, and these modules
are imported only when a file is built, so a running bot does not pay for them up front.
"""
