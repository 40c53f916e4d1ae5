"""skiplab.studies"""
