"""Recurrence (#24; seed 002: from result management to source management): the components that keep failing
(``components``) and the places where one kind of problem keeps coming back (``places``), read through
``queries`` from the cases the district stores (SQL in ``store``)."""
