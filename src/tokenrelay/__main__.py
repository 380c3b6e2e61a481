from tokenrelay.cli import app

app(prog_name="tokenrelay")
