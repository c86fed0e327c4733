"""rtdrive core: message types, clocks, geometry, road geometry and configuration loading.

Imports nothing else of rtdrive; every other package may import it.
"""
