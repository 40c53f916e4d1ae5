"""skiplab.analysis"""
