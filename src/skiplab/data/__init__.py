"""skiplab.data"""
