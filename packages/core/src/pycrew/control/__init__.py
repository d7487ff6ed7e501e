"""The controller side: the user's controllers, the dispatcher, and the bookkeeping of tasks.

Nothing on the worker side (:mod:`pycrew.worker`, :mod:`pycrew.wire`) imports from here;
a test checks it.
"""
