"""Local emulators of cloud platforms that really run pycrew workers as local processes.

Test infrastructure, not product: see each module's docstring for what it emulates and
which behaviours are guesses.
"""
