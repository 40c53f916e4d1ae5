"""skiplab.deploy"""
