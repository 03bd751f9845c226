console.log("sluice")
