# automake fragment included by Makefile.am
