"""radpipe.synth"""
