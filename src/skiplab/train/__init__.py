"""skiplab.train"""
