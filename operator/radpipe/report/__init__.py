"""radpipe.report"""
