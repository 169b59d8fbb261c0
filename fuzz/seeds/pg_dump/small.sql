--
-- PostgreSQL database dump
--
CREATE TABLE public.t (id integer, v text);
COPY public.t (id, v) FROM stdin;
1	hello
2	\N
\.
COPY public."Odd ""x""" (a) FROM stdin;
\.
--
-- PostgreSQL database dump complete
--
